"""Streamlit pages. They hold no science: every computation is a musegnn_core call."""

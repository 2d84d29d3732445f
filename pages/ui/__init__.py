"""Shared UI helpers of the pages (a subfolder, so Streamlit does not list it as a page)."""

"""Widgets generated from musegnn_core.settings: one per setting, with its label, help,
bounds and choices, so that the pages never restate a default, a bound or a choice."""

from __future__ import annotations

from typing import Any

from musegnn_core.settings import Setting


def widget_value(spec: Setting, value: Any) -> Any:
    """A setting's value as its widget holds it (a list as lines of text)."""
    return "\n".join(value) if spec.kind == "list" else value


def setting_input(where, spec: Setting, key: str, **options: Any) -> Any:
    """Draw the widget of ``spec`` in ``where`` (a column, form or st); its value is in
    ``st.session_state[key]`` (put the default there first)."""
    meta = spec.meta
    common = {"key": key, "help": meta.help or None, **options}
    if spec.kind == "bool":
        return where.checkbox(meta.label, **common)
    if spec.kind == "list":
        return where.text_area(
            meta.label, placeholder="gene symbols, separated by commas or lines", **common
        )
    if meta.choices:
        return where.selectbox(meta.label, meta.choices, format_func=meta.describe_choice, **common)
    if spec.kind == "text":
        return where.text_input(meta.label, **common)
    number = int if spec.kind == "int" else float
    bounds = {}
    # Only closed bounds fit a number box; an open one (0 < p < 1) is checked by the core.
    if meta.low is not None and not meta.low_open:
        bounds["min_value"] = number(meta.low)
    if meta.high is not None and not meta.high_open:
        bounds["max_value"] = number(meta.high)
    if meta.step is not None:
        bounds["step"] = number(meta.step)
    if meta.format:
        bounds["format"] = meta.format
    return where.number_input(meta.label, **bounds, **common)

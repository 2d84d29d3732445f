"""Helpers of the Train page: setting widgets' state, the live panel's figure and texts."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from musegnn_core.pins import pinned_genes
from musegnn_core.settings import LAUNCH_SETTINGS, SETTINGS, preset_values
from pages.ui.settings_form import widget_value

#: Widget keys of the settings: one per setting of musegnn_core.settings.SETTINGS.
SETTING_KEYS = {name: f"train-{name}" for name in SETTINGS}
#: Widget key of "use N GPUs" (musegnn_core.settings.LAUNCH_SETTINGS["processes"]).
PROCESSES_KEY = "train-processes"
LOSS_LABELS = {
    "total": "Total",
    "reconstruction": "Edge reconstruction (BCE)",
    "similarity": "Shared-gene similarity",
    "contrastive": "Contrastive (NT-Xent)",
}
STATE_ICONS = {
    "starting": ":material/hourglass_top:",
    "running": ":material/play_circle:",
    "stopped": ":material/pause_circle:",
    "completed": ":material/check_circle:",
    "failed": ":material/error:",
    "cancelled": ":material/cancel:",
}


def load_preset_defaults(preset: str, *, force: bool = False, workspace=None) -> None:
    """Put the preset's values into the setting widgets (all, or the unset ones).

    The device is the machine's, not the preset's: a chosen device is kept. The genes
    pinned in ``workspace`` (Embedding page, "pin for the next run") join the preset's
    genes to include.
    """
    values = preset_values(preset)
    if workspace is not None:
        pinned = tuple(pinned_genes(workspace))
        values["include_genes"] = tuple(dict.fromkeys((*values["include_genes"], *pinned)))
    for name, value in values.items():
        key = SETTING_KEYS[name]
        if key not in st.session_state or (force and name != "device"):
            st.session_state[key] = widget_value(SETTINGS[name], value)


def chosen_settings() -> dict:
    """The settings as the widgets hold them, for musegnn_core.jobs.start_training."""
    return {name: st.session_state[key] for name, key in SETTING_KEYS.items()}


def chosen_processes(gpus: int) -> int:
    """The training processes to launch: the "use N GPUs" choice where the machine has
    several GPUs (the control is shown), else the setting's default (one)."""
    default = LAUNCH_SETTINGS["processes"].default
    return int(st.session_state.get(PROCESSES_KEY, default)) if gpus >= 2 else default


def duration(seconds: float | None) -> str:
    """'1 h 02 min', '3 min 20 s', '45 s'; '' when unknown."""
    if seconds is None:
        return ""
    seconds = round(float(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def loss_figure(curve: pd.DataFrame) -> go.Figure:
    """One small line chart per loss term (each with its own scale), epochs on x."""
    terms = [t for t in LOSS_LABELS if t in curve]
    long = curve.melt(id_vars="epoch", value_vars=terms, var_name="term", value_name="loss")
    long["term"] = long["term"].map(LOSS_LABELS)
    figure = px.line(
        long,
        x="epoch",
        y="loss",
        facet_col="term",
        facet_col_wrap=2,
        facet_col_spacing=0.08,
        facet_row_spacing=0.18,
        markers=len(curve) <= 30,
        category_orders={"term": [LOSS_LABELS[t] for t in terms]},
    )
    figure.update_yaxes(matches=None, showticklabels=True, title=None)
    figure.update_xaxes(title=None)
    figure.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    figure.update_layout(height=420, margin={"l": 10, "r": 10, "t": 30, "b": 10})
    return figure

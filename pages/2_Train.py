"""Train: choose datasets and a preset, start a background training, watch it, stop, resume."""

import pandas as pd
import streamlit as st

from musegnn_core.jobs import (
    available_devices,
    cancel_training,
    device_description,
    gpu_count,
    loss_curve,
    read_log,
    resume_training,
    running_training,
    start_training,
    training_status,
)
from musegnn_core.settings import LAUNCH_SETTINGS, PRESETS, SETTINGS, preset_summary
from musegnn_core.workspace import Workspace
from pages.ui.common import (
    datasets_frame,
    flash,
    page_head,
    run_safely,
    safe_text,
)
from pages.ui.runs import runs_overview
from pages.ui.settings_form import setting_input
from pages.ui.training import (
    PROCESSES_KEY,
    SETTING_KEYS,
    STATE_ICONS,
    chosen_processes,
    chosen_settings,
    duration,
    load_preset_defaults,
    loss_figure,
)

REFRESH_SECONDS = 2.0

ws = page_head("Train")


def show_outcome(name: str) -> None:
    """The end of a run that was being watched on this page."""
    status = run_safely(lambda: training_status(ws, name), "Reading the training status")
    if status is None:
        return
    text = f"Run **{safe_text(name)}**: {status['state']}"
    if status["state"] == "completed":
        st.success(f"{text}. Explore it on the **Embedding** page.")
    elif status["error"]:
        st.error(f"{text}: {safe_text(status['error'])}")
    else:
        st.warning(f"{text}. {safe_text(status['message'])}")
    show_losses(ws, name, key="train-final-losses")


def show_losses(here: Workspace, name: str, key: str) -> None:
    """The loss curves of a run, as far as it trained (kept after it ended)."""
    curve = run_safely(lambda: loss_curve(here, name), "Reading the losses")
    if curve is not None and not curve.empty:
        st.plotly_chart(loss_figure(curve), key=key)
    else:
        st.caption("Loss curves appear after the first epoch.")


@st.fragment(run_every=REFRESH_SECONDS)
def live_panel(root: str, name: str) -> None:
    """Progress of the running training, refreshed every few seconds from its files."""
    here = Workspace(root)
    status = run_safely(lambda: training_status(here, name), "Reading the training status")
    if status is None:
        return
    if status["state"] not in ("starting", "running"):
        st.rerun()  # the whole page: the outcome, the run list and the buttons change
    with st.container(border=True):
        st.markdown(
            f"{STATE_ICONS.get(status['state'], '')} **{safe_text(name)}** is "
            f"{status['state']} ({safe_text(status['message'])})"
        )
        epoch, epochs = status["epoch"], status["epochs"]
        step = STEPS.get(status["phase"] if status["state"] == "running" else "graphs", 2)
        st.progress(
            min(epoch / epochs, 1.0) if epochs else 0.0,
            text=f"Step {step} of {len(STEP_NAMES)}: {STEP_NAMES[step - 1]}"
            + (f" (epoch {epoch} of {epochs})" if step == 2 and epochs else ""),
        )
        c1, c2, c3 = st.columns(3)
        per_epoch = status["seconds_per_epoch"]
        c1.metric("Epoch", f"{epoch} / {epochs or '?'}")
        c2.metric("Seconds per epoch", f"{per_epoch:.2f}" if per_epoch else "–")
        if step == 3:
            c3.metric("Time left", "UMAP and clusters", help="Epochs done; this takes seconds.")
        else:
            c3.metric("Time left", duration(status["eta_seconds"]) if epoch else "estimating")
        if status["stop_requested"]:
            st.info("Stop requested: the run stops after the current epoch, with a checkpoint.")
        elif st.button("Cancel", key="train-cancel", icon=":material/stop_circle:"):
            said = run_safely(lambda: cancel_training(here, name), "Cancel")
            if said:
                st.info(said)
        show_losses(here, name, key="train-losses")
        with st.expander("Log"):
            st.code(status["log_tail"] or "(empty)", language=None)


def runs_section() -> None:
    """Every run with its state; resume a stopped one; read a run's losses and log.

    While a training runs this part refreshes itself too, so its row follows the run."""
    runs = run_safely(lambda: runs_overview(ws), "Reading the runs")
    if runs is None or runs.empty:
        st.caption("No runs yet.")
        return
    st.dataframe(runs, hide_index=True, width="stretch", key="train-runs")
    resumable = runs.loc[runs["Resumable"], "Run"].tolist()
    if resumable:
        r1, r2 = st.columns([3, 1], vertical_alignment="bottom")
        target = r1.selectbox("Stopped run", resumable, key="train-resume-run")
        if r2.button("Resume", key="train-resume", icon=":material/replay:") and run_safely(
            lambda: resume_training(ws, target, chosen_processes(gpu_count())), "Resume"
        ):
            flash(f"Resuming run {safe_text(target)} from its last checkpoint.")
            st.rerun()
    with st.expander("Losses and log of a run"):
        which = st.selectbox("Run", runs["Run"].tolist(), key="train-log-run")
        show_losses(ws, which, key="train-run-losses")
        st.code(read_log(ws, which) or "(no log: the run was not started from the app)")


#: The steps of a training as the live panel names them, and the progress phase of each.
STEP_NAMES = ("building graphs", "training", "embeddings, UMAP and clusters")
STEPS = {"graphs": 1, "training": 2, "embedding": 3}

active = run_safely(lambda: running_training(ws), "Reading the training state")
live_runs = st.fragment(runs_section, run_every=REFRESH_SECONDS if active else None)
watched = st.session_state.get("train-watching")
if active:
    st.session_state["train-watching"] = active
    st.subheader("Training now")
    st.caption(
        "The training runs in the background: closing this page or the browser does not "
        "stop it. Come back any time to watch it."
    )
    live_panel(str(ws.root), active)
elif watched:
    show_outcome(watched)  # how the last run watched in this session ended

# ------------------------------------------------------------------ a new training
st.subheader("New training")
table = datasets_frame(ws)
if table.empty:
    st.info("This workspace has no datasets yet. Import some on the **Data** page.")
    st.subheader("Runs")
    live_runs()
    st.stop()

f1, f2, f3 = st.columns(3)
tissues = f1.multiselect(
    "Tissue", sorted(table["Tissue"].unique()), key="train-tissue", placeholder="all"
)
modalities = f2.multiselect(
    "Modality", sorted(table["Modality"].unique()), key="train-modality", placeholder="all"
)
species = f3.multiselect(
    "Species", sorted(table["Species"].unique()), key="train-species", placeholder="all"
)
keep = pd.Series(True, index=table.index)
for column, wanted in (("Tissue", tissues), ("Modality", modalities), ("Species", species)):
    if wanted:
        keep &= table[column].isin(wanted)
shown = table[keep]
names = shown["Dataset"].tolist()
# A new widget for each filter, so a change of filter offers all matching datasets again.
chosen = st.multiselect(
    "Datasets",
    names,
    default=names,
    key=f"train-datasets:{','.join(names)}",
    placeholder="choose datasets",
)
picked = table[table["Dataset"].isin(chosen)]
if picked.empty:
    st.warning("No dataset chosen: pick at least one (MuSe-GNN integrates two or more).")
else:
    st.dataframe(
        picked[["Dataset", "Species", "Tissue", "Modality", "Cells", "Genes"]],
        hide_index=True,
        width="stretch",
        column_config={
            "Cells": st.column_config.NumberColumn(format="%d"),
            "Genes": st.column_config.NumberColumn(format="%d"),
        },
    )
    st.caption(
        f"{len(picked)} datasets: {int(picked['Cells'].sum()):,} cells; "
        f"{picked['Tissue'].nunique()} tissues, {picked['Modality'].nunique()} modalities, "
        f"{picked['Species'].nunique()} species."
    )

presets = list(PRESETS)
preset = st.radio(
    "Preset",
    presets,
    index=presets.index("quick") if "quick" in presets else 0,
    key="train-preset",
    captions=[preset_summary(p) for p in presets],
    on_change=lambda: load_preset_defaults(
        st.session_state["train-preset"], force=True, workspace=ws
    ),
)
load_preset_defaults(preset, workspace=ws)

devices = available_devices()
if st.session_state.get(SETTING_KEYS["device"]) not in devices:
    st.session_state[SETTING_KEYS["device"]] = SETTINGS["device"].default
device = SETTINGS["device"].meta
st.radio(
    device.label,
    devices,
    key=SETTING_KEYS["device"],
    horizontal=True,
    format_func=device.describe_choice,
    help=device.help,
)
st.caption(f"This machine: {safe_text(device_description())}.")
gpus = gpu_count()
if gpus >= 2:  # one process per GPU, under torchrun (README: "Training on several GPUs")
    launch = LAUNCH_SETTINGS["processes"].meta
    counts = list(range(1, min(gpus, int(launch.high)) + 1))
    if st.session_state.get(PROCESSES_KEY) not in counts:
        st.session_state[PROCESSES_KEY] = LAUNCH_SETTINGS["processes"].default
    st.radio(
        launch.label,
        counts,
        key=PROCESSES_KEY,
        horizontal=True,
        format_func=lambda n: f"use {n} GPU{'s' if n > 1 else ''}",
        help=launch.help,
    )

with st.expander("Advanced settings (defaults: the chosen preset)"):
    advanced = [spec for name, spec in SETTINGS.items() if name != "device"]
    for row in range(0, len(advanced), 3):
        for column, spec in zip(st.columns(3), advanced[row : row + 3], strict=False):
            setting_input(column, spec, SETTING_KEYS[spec.name])
    st.button(
        "Reset to the preset's values",
        key="train-reset",
        on_click=lambda: load_preset_defaults(
            st.session_state["train-preset"], force=True, workspace=ws
        ),
    )

run_name = st.text_input("Run name", key="train-run-name", placeholder="automatic: preset-date")
if st.button(
    "Start training",
    type="primary",
    key="train-start",
    icon=":material/play_arrow:",
    disabled=bool(active),
    help="One training at a time: wait for the current one or cancel it." if active else None,
):
    started = run_safely(
        lambda: start_training(
            ws,
            datasets=chosen,
            preset=preset,
            overrides=chosen_settings(),
            run_name=run_name.strip() or None,
            processes=chosen_processes(gpus),
        ),
        "Starting the training",
    )
    if started:
        flash(
            f"Started run {safe_text(started)} in the background; it keeps running if you "
            "close this page."
        )
        st.rerun()

st.subheader("Runs")
live_runs()

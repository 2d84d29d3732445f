"""Run tables of the Home and Train pages, built from the core's run and job states."""

from __future__ import annotations

import pandas as pd

from musegnn_core.jobs import all_jobs, read_job_config, training_status
from musegnn_core.runs import Run, list_runs
from musegnn_core.workspace import Workspace

#: Evaluation metrics shown in run tables: key in evaluation.json -> column label.
KEY_METRICS = {"mean_of_six": "Mean of six metrics", "auc": "Edge AUC", "asw": "ASW"}


def _when(stamp: str | None) -> str:
    return (stamp or "")[:16].replace("T", " ")


def key_metrics(run: Run) -> dict[str, float]:
    """The run's own scores from its evaluation (empty when it was not evaluated)."""
    table = run.evaluation()
    if table is None or "musegnn" not in table:
        return {}
    column = table["musegnn"]
    return {
        label: round(float(column[key]), 3)
        for key, label in KEY_METRICS.items()
        if key in column and pd.notna(column[key])
    }


def _progress_text(status: dict) -> str:
    if status["phase"] == "embedding" and status["state"] == "running":
        return "UMAP and clusters"
    return f"{status['epoch']}/{status['epochs'] or '?'}"


def runs_overview(workspace: Workspace) -> pd.DataFrame:
    """One row per run (and per job that failed before its run existed), newest first:
    state, preset, device, datasets, epochs, creation time, key evaluation metrics."""
    rows = []
    seen = set()
    for run in list_runs(workspace):
        seen.add(run.name)
        config, status = run.config(), training_status(workspace, run.name)
        train = config.get("train", {})
        device = config.get("device", "")
        if config.get("device_name") and config.get("device_name") != "CPU":
            device = f"{device} ({config['device_name']})"
        row = {
            "Run": run.name,
            "State": status["state"],
            "Preset": train.get("preset", ""),
            "Device": device,
            "Datasets": len(config.get("datasets", [])),
            "Dataset names": ", ".join(config.get("datasets", [])),
            "Epochs": _progress_text(status),
            "Created": _when(config.get("created_at")),
            "Message": status["error"] or status["message"],
            "Resumable": status["resumable"],
        }
        row.update(key_metrics(run))
        rows.append(row)
    for record in all_jobs(workspace):
        name = record.get("run")
        if not name or name in seen:
            continue
        status = training_status(workspace, name)
        request = read_job_config(workspace, name)
        train, datasets = request.get("train", {}), request.get("datasets", [])
        rows.append(
            {
                "Run": name,
                "State": status["state"],
                "Preset": train.get("preset", ""),
                "Device": train.get("device", ""),
                "Datasets": len(datasets),
                "Dataset names": ", ".join(datasets),
                "Epochs": f"0/{train.get('epochs', '?')}",
                "Created": _when(record.get("started_at")),
                "Message": status["error"] or status["message"],
                "Resumable": False,
            }
        )
    table = pd.DataFrame(rows)
    if not table.empty:
        table = table.sort_values("Created", ascending=False, kind="stable")
        # The long list of dataset names last, so the state and scores stay in view.
        last = ["Message", "Dataset names", "Resumable"]
        table = table[[c for c in table.columns if c not in last] + last]
    return table.reset_index(drop=True)

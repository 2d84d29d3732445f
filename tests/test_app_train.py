"""Train page, Home runs section and Data page QC plots, rendered headless with AppTest."""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import shutil
import signal
import time

import pytest
from streamlit.testing.v1 import AppTest

from musegnn_core import jobs
from musegnn_core.data.demo import fill_demo
from musegnn_core.train import PRESETS
from musegnn_core.workspace import Workspace
from tests.factories import open_app_page

TRAIN = "pages/2_Train.py"
DATA = "pages/1_Data.py"
TIMEOUT = 300  # seconds for a background process to reach a state on a busy 2-core machine


@pytest.fixture(scope="module")
def sim_template(tmp_path_factory):
    ws = Workspace.open(tmp_path_factory.mktemp("app-train") / "ws")
    fill_demo(ws, prefer_simulated=True)
    return ws.root


@pytest.fixture
def sim_ws(sim_template, tmp_path, monkeypatch):
    """A private copy of the simulated atlas without runs; the app points at it."""
    root = tmp_path / "ws"
    shutil.copytree(sim_template, root)
    monkeypatch.setenv("MUSEGNN_WORKSPACE", str(root))
    return Workspace.open(root)


@pytest.fixture
def trained_ws(trained_sim_workspace, monkeypatch):
    """The simulated atlas with a completed run ``r``; background jobs are ended afterwards."""
    monkeypatch.setenv("MUSEGNN_WORKSPACE", str(trained_sim_workspace))
    ws = Workspace.open(trained_sim_workspace)
    yield ws
    for record in jobs.all_jobs(ws):  # processes this test started
        if jobs.job_alive(record):
            with contextlib.suppress(ProcessLookupError):
                os.kill(record["pid"], signal.SIGTERM)


def charts(at: AppTest) -> list[dict]:
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def chart_titles(at: AppTest) -> list[str]:
    return [c["layout"].get("title", {}).get("text", "") for c in charts(at)]


def texts(elements) -> list[str]:
    """Element texts as a reader sees them: markdown escapes and HTML entities undone."""
    return [re.sub(r"\\(.)", r"\1", html.unescape(e.value)) for e in elements]


def rerun_until(at: AppTest, check, timeout: float = TIMEOUT) -> AppTest:
    """Rerun the page (as the live panel's timer does) until ``check(at)`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        if check(at):
            return at
        time.sleep(1.0)
    raise AssertionError(
        f"page never reached the expected state; markdown: {texts(at.markdown)}; "
        f"errors: {texts(at.error)}"
    )


def test_train_page_without_runs_offers_filters_presets_and_defaults(sim_ws):
    at = open_app_page(TRAIN)
    assert "No runs yet." in texts(at.caption)
    assert not [s for s in texts(at.subheader) if s == "Training now"]
    preset = at.radio(key="train-preset")
    assert preset.value == "quick" and set(preset.options) == set(PRESETS)
    # Defaults and explanations come from the preset definitions.
    assert at.number_input(key="train-epochs").value == PRESETS["quick"].epochs
    assert at.number_input(key="train-n_genes").value == PRESETS["quick"].graph.n_genes
    assert (
        at.number_input(key="train-edges_per_gene").value == PRESETS["quick"].graph.edges_per_gene
    )
    assert any(jobs.device_description() in c for c in texts(at.caption))
    assert at.radio(key="train-device").options == ["automatic", "CPU"]
    complete = at.checkbox(key="train-complete_graphs")  # a graph option, off in the presets
    assert complete.label == "Complete graphs with the run's genes" and complete.value is False
    everything = at.dataframe[0].value
    assert len(everything) == len(sim_ws.dataset_names())

    at.radio(key="train-device").set_value("cpu").run()
    preset.set_value("paper").run()
    assert at.number_input(key="train-epochs").value == PRESETS["paper"].epochs
    assert at.radio(key="train-device").value == "cpu"  # the machine's choice is kept
    assert at.number_input(key="train-edges_per_gene").value == 0  # every edge

    at.multiselect(key="train-tissue").set_value(["pancreas"]).run()
    datasets = next(m for m in at.multiselect if m.label == "Datasets")
    assert set(datasets.options) == {"sim_scrna_human_pancreas", "sim_scrna_mouse_pancreas"}
    chosen = at.dataframe[0].value
    assert set(chosen["Dataset"]) == set(datasets.options)
    cells = sum(sim_ws.dataset(n).n_cells for n in datasets.options)
    assert any(c.startswith(f"2 datasets: {cells:,} cells") for c in texts(at.caption))


def test_pinned_genes_prefill_the_genes_to_include(sim_ws):
    from musegnn_core.pins import pin_genes

    pin_genes(sim_ws, ["MKI67", "CD74"])
    at = open_app_page(TRAIN)
    assert at.text_area(key="train-include_genes").value.split() == ["MKI67", "CD74"]
    at.radio(key="train-preset").set_value("paper").run()  # kept across presets
    assert at.text_area(key="train-include_genes").value.split() == ["MKI67", "CD74"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        # Closed bounds are the number boxes' own (test_settings); open ones are the core's.
        ("train-lr_encoder", 5.0, "lr_encoder must be in (0, 1)"),
        ("train-lr_decoder", 0.0, "lr_decoder must be in (0, 1)"),
        ("train-pvalue", 0.0, "pvalue must be in (0, 1)"),
    ],
)
def test_out_of_range_settings_are_refused_with_a_message(sim_ws, key, value, message):
    at = open_app_page(TRAIN)
    at.number_input(key=key).set_value(value)
    at.button(key="train-start").click().run()
    assert not at.exception
    assert [e for e in texts(at.error) if e.startswith("Starting the training failed:")]
    assert message in at.error[-1].value
    assert not list(sim_ws.jobs_dir.glob("*.json"))  # nothing was started


def test_train_page_on_an_empty_workspace_points_to_data_page(tmp_path, monkeypatch):
    ws = Workspace.open(tmp_path / "empty")
    ws.update_info(demo={"kind": "none"})
    monkeypatch.setenv("MUSEGNN_WORKSPACE", str(ws.root))
    at = open_app_page(TRAIN)
    assert any("no datasets yet" in i and "Data" in i for i in texts(at.info))
    assert "No runs yet." in texts(at.caption)
    assert not [b for b in at.button if b.key == "train-start"]


def test_home_without_runs_points_to_train_page(sim_ws):
    at = open_app_page()
    assert any("**Next step:** train" in i for i in texts(at.info))
    assert dict((m.label, m.value) for m in at.metric)["Runs"] == "0"


def test_completed_run_on_train_and_home(trained_ws):
    at = open_app_page(TRAIN)
    runs = at.dataframe[-1].value.set_index("Run")
    assert runs.loc["r", "State"] == "completed" and runs.loc["r", "Epochs"] == "20/20"
    assert not runs.loc["r", "Resumable"]
    assert "Training now" not in texts(at.subheader)
    assert not [s for s in at.selectbox if s.label == "Stopped run"]

    home = open_app_page()
    table = home.dataframe[-1].value.set_index("Run")
    assert table.loc["r", "State"] == "completed" and table.loc["r", "Preset"] == "quick"
    assert table.loc["r", "Datasets"] == len(trained_ws.dataset_names())
    metrics = {m.label: m.value for m in home.metric}
    n = len(trained_ws.dataset_names())
    assert metrics["Graphs built"] == f"{n} of {n}" and metrics["Completed runs"] == "1"
    assert any("Embedding" in i and "run r" in i for i in texts(home.info))


def test_start_watch_refuse_cancel_and_resume_from_the_page(trained_ws):
    at = open_app_page(TRAIN)
    # The graphs of the trained fixture are reused: same genes and edges per gene.
    at.number_input(key="train-n_genes").set_value(150)
    at.number_input(key="train-edges_per_gene").set_value(30)
    at.number_input(key="train-epochs").set_value(500)
    at.text_input(key="train-run-name").set_value("live")
    at.button(key="train-start").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert any("Started run live in the background" in s for s in texts(at.success))
    assert jobs.running_training(trained_ws) == "live"

    # The live panel: progress from status.json, losses once an epoch is done.
    at = rerun_until(
        at, lambda a: any("**live** is running" in m for m in texts(a.markdown)) and charts(a)
    )
    assert "Training now" in texts(at.subheader)
    assert at.get("progress") and any("Epoch" in m.label for m in at.metric)
    assert {a["text"] for a in charts(at)[0]["layout"]["annotations"]} >= {
        "Total",
        "Edge reconstruction (BCE)",
    }

    # No second start while it trains; the Runs table follows the run live.
    assert at.button(key="train-start").disabled
    assert at.dataframe[-1].value.set_index("Run").loc["live", "State"] == "running"
    home = open_app_page()
    assert any("Training now:** run live" in i for i in texts(home.info))

    # Cancel: the run stops after the current epoch and becomes resumable.
    at.button(key="train-cancel").click().run()
    assert any("Stopping run live" in i for i in texts(at.info))
    at = rerun_until(at, lambda a: any(s.label == "Stopped run" for s in a.selectbox))
    assert any("Run **live**: stopped" in w for w in texts(at.warning))
    runs = at.dataframe[-1].value.set_index("Run")
    assert runs.loc["live", "State"] == "stopped" and runs.loc["live", "Resumable"]

    at.selectbox(key="train-resume-run").set_value("live")
    at.button(key="train-resume").click().run()
    assert any("Resuming run live" in s for s in texts(at.success))
    assert jobs.training_status(trained_ws, "live")["state"] in ("starting", "running")
    jobs.cancel_training(trained_ws, "live")  # ended by the fixture if still preparing


def test_data_page_shows_qc_plots(sim_ws):
    at = open_app_page(DATA)
    at.selectbox(key="qc-dataset").set_value("sim_spatial_human_breast").run()
    assert not at.exception
    assert chart_titles(at) == ["Counts per cell", "Genes per cell", "Spots coloured by counts"]
    spots = sim_ws.dataset("sim_spatial_human_breast").n_cells
    assert any(c.startswith(f"{spots:,} cells;") for c in texts(at.caption))
    scatter = charts(at)[2]["data"][0]
    assert scatter["type"] == "scatter" and scatter["mode"] == "markers"

    at.selectbox(key="qc-dataset").set_value("sim_scrna_human_blood_a").run()
    assert chart_titles(at) == ["Counts per cell", "Genes per cell"]
    legend = {trace["name"] for trace in charts(at)[0]["data"]}
    assert legend <= {"passes default QC", "removed by default QC"} and legend

"""Evaluation as a background job, like training: it survives leaving the Benchmark page."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest

from musegnn_core import jobs
from musegnn_core.errors import WorkspaceError
from musegnn_core.runs import get_run
from musegnn_core.workspace import Workspace
from tests.factories import open_app_page

BENCHMARK = "pages/7_Benchmark.py"
TIMEOUT = 300  # seconds on a busy 2-core machine


@pytest.fixture
def ws(trained_sim_workspace, monkeypatch):
    monkeypatch.setenv("MUSEGNN_WORKSPACE", str(trained_sim_workspace))
    workspace = Workspace.open(trained_sim_workspace, create=False)
    yield workspace
    record = jobs.read_job(workspace, "r", "evaluate")
    if jobs.job_alive(record):
        with contextlib.suppress(ProcessLookupError):
            os.kill(record["pid"], signal.SIGTERM)


def test_evaluation_runs_in_the_background_and_survives_leaving_the_page(ws):
    assert jobs.evaluation_status(ws, "r")["state"] == "none"
    at = open_app_page(BENCHMARK)
    at.multiselect(key="bench_baselines").set_value(["random"])
    at.multiselect(key="bench_libraries").set_value([])
    at.button(key="bench_go").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("in the background" in s.value for s in at.success)
    assert jobs.read_job(ws, "r", "evaluate")["command"][3] == "evaluate"
    if jobs.evaluation_status(ws, "r")["state"] == "running":
        assert at.button(key="bench_go").disabled
        with pytest.raises(WorkspaceError, match="already being evaluated"):
            jobs.start_evaluation(ws, "r")

    open_app_page("pages/4_Clusters.py")  # the user leaves; the evaluation goes on
    deadline = time.monotonic() + TIMEOUT
    while jobs.evaluation_status(ws, "r")["state"] == "running":
        assert time.monotonic() < deadline, jobs.read_log(ws, "r", kind="evaluate")
        time.sleep(0.5)
    assert jobs.evaluation_status(ws, "r")["state"] == "done"
    record = get_run(ws, "r").evaluation_record()
    assert set(record["table"]) == {"musegnn", "random"}

    at = open_app_page(BENCHMARK)
    assert not at.error and at.dataframe


def test_a_failed_evaluation_says_why(ws):
    jobs.start_evaluation(ws, "r", baselines=["no-such-baseline"])
    deadline = time.monotonic() + TIMEOUT
    while (state := jobs.evaluation_status(ws, "r"))["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert state["state"] == "failed" and "no-such-baseline" in state["error"]
    at = open_app_page(BENCHMARK)
    assert any("The last evaluation of r failed" in e.value for e in at.error)

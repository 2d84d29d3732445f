"""The frame (app.py) draws the run picker; the explore pages show the run it picked.

app.py draws the sidebar's "Run" box once, on the pages that explore a run only, and keeps
the chosen run in the session; each explore page reads it (``selection.picked_run``) and
draws no picker of its own.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from musegnn_core.analysis.clusters import cluster_embedding
from musegnn_core.runs import get_run
from musegnn_core.workspace import Workspace
from pages.ui import selection
from pages.ui.common import PAGES
from tests.factories import open_app_page

EXPLORE = [nav.script for nav in PAGES if nav.explores_run]
OTHERS = [nav.script for nav in PAGES if not nav.explores_run]


@pytest.fixture
def two_runs(trained_sim_workspace, monkeypatch):
    """Run "r" (resolution 1) and a newer copy "r2" whose clusters are at resolution 2."""
    ws = Workspace.open(trained_sim_workspace, create=False)
    run = get_run(ws, "r")
    shutil.copytree(run.root, ws.runs_dir / "r2")
    newer = get_run(ws, "r2")
    config = newer.config()
    config["name"] = "r2"
    config["created_at"] = "9999-01-01T00:00:00"
    config["train"]["leiden_resolution"] = 2.0
    newer.config_path.write_text(json.dumps(config))
    embedding = newer.embedding()
    cluster_embedding(embedding, resolution=2.0, seed=0)
    embedding.write_h5ad(newer.embeddings_path)
    monkeypatch.setenv("MUSEGNN_WORKSPACE", str(ws.root))
    return ws


@pytest.fixture
def picker_calls(monkeypatch):
    """The file that called ``selection.run_picker``, once per call."""
    calls: list[str] = []
    real = selection.run_picker

    def recorded():
        calls.append(Path(sys._getframe(1).f_code.co_filename).name)
        return real()

    monkeypatch.setattr(selection, "run_picker", recorded)
    return calls


def pickers(at) -> list:
    return [box for box in at.selectbox if box.key == selection.RUN_PICKER]


def shows_run(at, page: str, run: str, resolution: int) -> None:
    """The page shows ``run``'s content (not another run's)."""
    assert not at.exception, (page, at.exception)
    assert not at.error, (page, [e.value for e in at.error])
    assert at.query_params["run"] == run, page
    assert float(at.query_params["res"]) == resolution, page
    summary = "\n".join(m.value for m in at.sidebar.markdown)
    assert f"Resolution **{resolution}**" in summary, (page, summary)
    captions = "\n".join(c.value for c in at.caption)
    infos = "\n".join(i.value for i in at.info)
    if page.endswith("Embedding.py"):
        assert f"Run **{run}**:" in captions
    elif page.endswith("Clusters.py"):
        assert f"Run {run}, resolution {resolution}." in captions
    elif page.endswith("Benchmark.py"):
        assert f"Run {run} has not been evaluated yet" in infos


@pytest.mark.usefixtures("app_frame")
def test_the_frame_draws_the_run_picker_once_and_only_on_explore_pages(two_runs, picker_calls):
    at = open_app_page()
    for page in [*OTHERS, *EXPLORE]:
        picker_calls.clear()
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)
        if page in EXPLORE:
            # Drawn by app.py, once, in the sidebar; the page draws none of its own.
            assert picker_calls == ["app.py"], (page, picker_calls)
            assert len(pickers(at)) == 1, page
            assert [box.key for box in at.selectbox if box.label == "Run"] == [
                selection.RUN_PICKER
            ], page
            box = at.sidebar.selectbox(key=selection.RUN_PICKER)
            assert box.label == "Run" and box.options[:2] == [
                selection.run_label(get_run(two_runs, "r2")),
                selection.run_label(get_run(two_runs, "r")),
            ]
        else:
            assert picker_calls == [], page
            assert not pickers(at), page
            assert selection.PICKED_RUN not in at.session_state, page


@pytest.mark.usefixtures("app_frame")
def test_every_explore_page_shows_the_run_picked_in_the_frame(two_runs):
    at = open_app_page()
    # The newest run by default, on every explore page.
    for page in EXPLORE:
        at.switch_page(page).run()
        assert at.sidebar.selectbox(key=selection.RUN_PICKER).value == "r2", page
        shows_run(at, page, "r2", 2)
    # Picked in the frame on one page, shown on all (its own resolution, not r2's).
    at.sidebar.selectbox(key=selection.RUN_PICKER).set_value("r").run()
    for page in reversed(EXPLORE):
        at.switch_page(page).run()
        assert at.sidebar.selectbox(key=selection.RUN_PICKER).value == "r", page
        shows_run(at, page, "r", 1)
    # Leaving for a page that explores no run and coming back keeps the choice.
    at.switch_page(OTHERS[0]).run()
    at.switch_page(EXPLORE[0]).run()
    shows_run(at, EXPLORE[0], "r", 1)


def test_a_page_run_without_the_frame_still_picks_its_run(two_runs, picker_calls):
    """Streamlit runs a page alone (no app.py) while a server has not yet run app.py (its
    first visitor opened a page's address); the page then draws the frame's picker itself."""
    at = open_app_page()
    at.switch_page(EXPLORE[0]).run()
    assert [c for c in picker_calls if c != "app.py"] == ["selection.py"]
    assert at.sidebar.selectbox(key=selection.RUN_PICKER).value == "r2"
    shows_run(at, EXPLORE[0], "r2", 2)

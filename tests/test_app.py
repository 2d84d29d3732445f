"""The Streamlit pages, rendered headless with AppTest."""

from __future__ import annotations

import pytest

from musegnn_core.settings import PRESETS
from musegnn_core.workspace import Workspace
from tests.conftest import requires_shared_data
from tests.factories import make_counts, open_app_page, write_h5ad


@pytest.fixture
def empty_ws(tmp_path, monkeypatch):
    """A workspace that has had its demo already (so pages start empty and fast)."""
    ws = Workspace.open(tmp_path / "ws")
    ws.update_info(demo={"kind": "none"})
    monkeypatch.setenv("MUSEGNN_WORKSPACE", str(ws.root))
    return ws


@requires_shared_data
def test_fresh_workspace_fills_with_real_demo(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSEGNN_WORKSPACE", str(tmp_path / "fresh"))
    monkeypatch.delenv("MUSEGNN_DEMO_DATA", raising=False)
    at = open_app_page()
    assert [m.value for m in at.metric][:4] == ["8", "2", "4", "3"]
    table = at.dataframe[0].value
    assert set(table["Modality"]) == {"scRNA-seq", "Spatial", "scATAC gene activity"}
    assert not any("Simulated data" in w.value for w in at.warning)


def test_fresh_workspace_without_real_data_uses_labelled_simulation(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSEGNN_WORKSPACE", str(tmp_path / "fresh"))
    monkeypatch.setenv("MUSEGNN_DEMO_DATA", "")
    at = open_app_page()
    assert any("Simulated data" in w.value for w in at.warning)
    table = at.dataframe[0].value
    assert len(table) >= 5 and table["Simulated"].all()
    assert Workspace.open(tmp_path / "fresh").info()["demo"]["kind"] == "simulated"


def test_home_on_empty_workspace_points_to_data_page(empty_ws):
    at = open_app_page()
    assert any("Data" in i.value for i in at.info)


def test_data_page_imports_from_server_path_and_deletes(empty_ws, tmp_path):
    path = write_h5ad(make_counts(), tmp_path / "lung.h5ad")
    at = open_app_page("pages/1_Data.py")
    at.text_input(key="path-input").set_value(str(path))
    at.text_input(key="path-tissue").set_value("lung")
    at.selectbox(key="path-species").set_value("human").run()
    at.button(key="path-go").click().run()
    assert not at.exception
    assert any("Imported" in s.value and "lung" in s.value for s in at.success)
    assert empty_ws.dataset("lung").tissue == "lung"

    at.checkbox(key="delete-confirm").check().run()
    at.button(key="delete-go").click().run()
    assert any("Deleted lung" in s.value for s in at.success)
    assert empty_ws.datasets() == []


def test_data_page_bad_input_shows_message_and_changes_nothing(empty_ws, tmp_path):
    bad = tmp_path / "neg.csv"
    bad.write_text("gene,c1,c2\nA,-1,2\n")
    at = open_app_page("pages/1_Data.py")
    for value in (str(bad), str(tmp_path / "missing.h5ad"), "/etc/passwd"):
        at.text_input(key="path-input").set_value(value).run()
        at.button(key="path-go").click().run()
        assert not at.exception
        assert at.error and at.error[-1].value.startswith("Import failed:")
    assert empty_ws.datasets() == []


@requires_shared_data
def test_data_page_imports_shared_10x_folder(empty_ws, shared_data):
    at = open_app_page("pages/1_Data.py")
    at.text_input(key="path-input").set_value(str(shared_data / "formats" / "pbmc3k_10x_v3_mtx"))
    at.text_input(key="path-name").set_value("pbmc3k").run()
    at.button(key="path-go").click().run()
    assert not at.exception and not at.error
    meta = empty_ws.dataset("pbmc3k")
    assert (meta.n_cells, meta.n_genes, meta.species) == (2700, 32738, "human")


def test_data_page_builds_graphs_and_shows_statistics(tmp_path, monkeypatch):
    from musegnn_core.data.demo import fill_demo

    ws = Workspace.open(tmp_path / "ws")
    fill_demo(ws, prefer_simulated=True)
    monkeypatch.setenv("MUSEGNN_WORKSPACE", str(ws.root))
    at = open_app_page("pages/1_Data.py")
    # The form starts from the quick preset's settings, so a quick training finds the graphs.
    assert at.radio(key="graph-preset").value == "quick"
    assert (
        at.number_input(key="graph-edges_per_gene").value == PRESETS["quick"].graph.edges_per_gene
    )
    at.number_input(key="graph-n_genes").set_value(200)
    at.multiselect(key="graph-datasets").set_value(
        ["sim_scrna_human_blood_a", "sim_spatial_human_breast"]
    )
    at.button(key="graph-go").click().run()
    assert not at.exception
    assert any("Graphs ready for 2 datasets (2 built" in s.value for s in at.success)
    stats = at.dataframe[1].value
    assert set(stats["Dataset"]) == {"sim_scrna_human_blood_a", "sim_spatial_human_breast"}
    assert set(stats["Gene selection"]) == {"pearson_residuals", "sparkx"}
    assert (stats["Genes"] <= 200).all() and (stats["Edges"] > 0).all()

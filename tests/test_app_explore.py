"""The explore pages (Embedding, Clusters, Enrichment, Co-expression, Benchmark) with AppTest.

Plot and table selections are sent the way the browser sends them: a JSON widget state
for the chart or table, through AppTest's runner.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import time
from types import SimpleNamespace

import numpy as np
import pytest
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest

from musegnn_core.analysis.annotate import (
    cluster_gene_table,
    run_annotations,
    run_graph_adjacency,
    short_library,
)
from musegnn_core.analysis.clusters import cluster_summary, gene_occurrences, run_clustering
from musegnn_core.analysis.enrich import enrich_libraries, run_background
from musegnn_core.analysis.evaluate import load_embedding, run_graphs
from musegnn_core.analysis.neighbors import nearest_genes
from musegnn_core.analysis.subgraph import coexpression_subgraph
from musegnn_core.paths import PROJECT_ROOT
from musegnn_core.pins import pinned_genes
from musegnn_core.runs import get_run
from musegnn_core.workspace import Workspace
from pages.ui.theme import MUTED, category_colors, wrap_label

# Every page inside app.py's frame (which draws the run picker), as the server runs it.
pytestmark = pytest.mark.usefixtures("app_frame")

APP = str(PROJECT_ROOT / "app.py")
PAGES = {
    "Embedding": "pages/3_Embedding.py",
    "Clusters": "pages/4_Clusters.py",
    "Enrichment": "pages/5_Enrichment.py",
    "Co-expression": "pages/6_Coexpression.py",
    "Benchmark": "pages/7_Benchmark.py",
}


@pytest.fixture
def sim(trained_sim_workspace, monkeypatch):
    """The trained simulated workspace (run "r"), its embedding and clusters, seen by the app."""
    monkeypatch.setenv("MUSEGNN_WORKSPACE", str(trained_sim_workspace))
    ws = Workspace.open(trained_sim_workspace, create=False)
    run = get_run(ws, "r")
    embedding = load_embedding(run)
    labels = run_clustering(run, embedding).labels
    return SimpleNamespace(ws=ws, run=run, embedding=embedding, labels=labels)


def app(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params.update(query or {})
    return at.run()


def goto(at: AppTest, page: str) -> AppTest:
    at.switch_page(PAGES[page]).run()
    assert not at.exception, at.exception
    return at


def chart(at: AppTest, key: str):
    """The chart whose key is ``key`` (the UMAP's key gains a version after a selection)."""
    found = [
        e for e in at.get("plotly_chart") if e.proto.id.endswith(key) or f"{key}-v" in e.proto.id
    ]
    assert found, f"no chart {key!r}"
    return found[0]


def find_table(at: AppTest, first_column: str, *others: str):
    """The table whose columns start with ``first_column`` and include ``others``
    (plain tables carry no key in AppTest)."""
    for frame in at.dataframe:
        value = frame.value
        if (
            len(value.columns)
            and value.columns[0] == first_column
            and set(others) <= set(value.columns)
        ):
            return value
    raise AssertionError(f"no table with columns {first_column}, {others}")


def send(at: AppTest, element, payload: dict) -> AppTest:
    """What the browser sends when the user selects on a chart or a table."""
    states = at._tree.get_widget_states()
    state = WidgetState(id=element.proto.id, string_value=json.dumps(payload))
    states.widgets.append(state)
    at._run(states)
    assert not at.exception, at.exception
    return at


def array(value) -> np.ndarray:
    """A numeric array of a figure spec: a list, or plotly's base64 typed array."""
    if isinstance(value, dict) and "bdata" in value:
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
    return np.asarray(value)


def texts(elements) -> str:
    """The text of messages as a reader sees it (the pages escape names for markdown)."""
    return re.sub(r"\\(.)", r"\1", html.unescape("\n".join(e.value for e in elements)))


def shared_gene(embedding) -> str:
    """A gene present in the most datasets."""
    counts = embedding.obs.groupby("gene", observed=True)["dataset"].nunique()
    return str(counts.sort_values(ascending=False, kind="stable").index[0])


def test_every_page_without_a_run_says_to_train_first(tmp_path, monkeypatch):
    ws = Workspace.open(tmp_path / "ws")
    ws.update_info(demo={"kind": "none"})
    # A run still training (its process, this one, is alive) is not offered yet.
    training = ws.runs_dir / "busy"
    training.mkdir(parents=True)
    (training / "config.json").write_text(json.dumps({"name": "busy", "datasets": []}))
    status = {"state": "running", "pid": os.getpid(), "epoch": 3, "epochs": 60}
    (training / "status.json").write_text(json.dumps(status))
    monkeypatch.setenv("MUSEGNN_WORKSPACE", str(ws.root))
    at = app()
    for page in PAGES:
        goto(at, page)
        assert [t.value for t in at.title] == [page]
        assert "No trained run yet" in texts(at.info)
        assert "Run busy is training (epoch 3 of 60)" in texts(at.caption)
        assert "Go to Train" in [link.value for link in at.page_link]
        assert not at.error
        assert not [box for box in at.selectbox if box.label == "Run"]  # no run to pick


def test_every_page_renders_a_run_with_core_results(sim):
    embedding = sim.embedding
    labels = sim.labels
    at = app()
    goto(at, "Embedding")
    assert at.sidebar.selectbox(key="run_picker").value == "r"
    assert at.query_params["run"] == "r" and float(at.query_params["res"]) == 1.0
    spec = json.loads(chart(at, "umap-r").proto.spec)
    datasets = sorted(embedding.obs["dataset"].astype(str).unique())
    assert [t["name"] for t in spec["data"]] == datasets
    assert sum(len(t["text"]) for t in spec["data"]) == embedding.n_obs
    colors = category_colors(datasets)
    assert [t["marker"]["color"] for t in spec["data"]] == [colors[d] for d in datasets]
    assert {b.label for b in at.download_button} >= {"Embedding as h5ad", "Embedding as CSV"}

    # Colour by cluster: one trace per cluster, in cluster order, named by its label, in
    # colours that are all different, with the colouring kept in the address.
    at.selectbox(key="umap_color").set_value("cluster").run()
    spec = json.loads(chart(at, "umap-r").proto.spec)
    n_clusters = labels.nunique()
    titles = run_annotations(sim.ws, sim.run).titles()
    assert [t["name"] for t in spec["data"]] == [
        wrap_label(titles[str(i)], 48) for i in range(n_clusters)
    ]
    assert len({t["marker"]["color"] for t in spec["data"]}) == n_clusters
    assert at.query_params["color"] == "cluster"
    centre_labels = [a["text"] for a in spec["layout"]["annotations"]]
    assert len(centre_labels) == n_clusters and centre_labels[0].startswith("<b>0</b>")
    assert spec["layout"]["font"] == {"size": 14, "color": "#222222"}

    goto(at, "Clusters")
    summary = cluster_summary(embedding, labels)
    table = at.dataframe(key="clusters_table-r-1").value
    assert len(table) == len(summary) == n_clusters
    assert list(table["size"]) == list(summary["size"])
    assert chart(at, "composition_heatmap")

    goto(at, "Enrichment")
    assert at.radio(key="enrich_source").options == ["Genes I type"]
    goto(at, "Co-expression")
    assert "Type a gene" in texts(at.info)
    goto(at, "Benchmark")
    assert "has not been evaluated yet" in texts(at.info)
    assert at.button(key="bench_go")


def test_cluster_selection_is_shared_across_pages_and_in_the_address(sim):
    embedding = sim.embedding
    labels = sim.labels
    at = goto(app(), "Clusters")
    at.selectbox(key="cluster_picker").set_value("2").run()
    graphs = run_graph_adjacency(sim.ws, sim.run)
    expected = cluster_gene_table(embedding, labels, "2", graphs)
    genes = find_table(at, "gene", "specific_to")
    assert list(genes["gene"]) == list(expected["gene"])  # most central first
    assert set(genes["gene"]) == set(gene_occurrences(embedding, labels, "2")["gene"])
    assert genes["centrality"].is_monotonic_decreasing
    # The cluster is named: its label in the picker, the heading and the tables.
    record = run_annotations(sim.ws, sim.run).cluster("2")
    assert at.selectbox(key="cluster_picker").format_func("2").startswith(f"2 · {record['label']}")
    assert f"2 · {record['label']}" in texts(at.markdown)
    hubs = next(
        f.value
        for f in at.dataframe
        if list(f.value.columns) == ["gene", "centrality", "n_datasets", "coexpression_degree"]
    )
    assert list(hubs["gene"]) == [h["gene"] for h in record["hub_genes"]]
    assert list(genes["gene"][: len(hubs)]) == list(hubs["gene"])
    if record["top_terms"]:
        terms = find_table(at, "term", "library", "overlap", "adjusted_p_value")
        assert terms["library"].iloc[0] == record["top_terms"][0]["library"]
    table = at.dataframe(key="clusters_table-r-1").value
    assert table.loc[table["cluster"] == "2", "label"].iloc[0] == record["label"]
    assert any(b.label == "Download the lab-meeting report (HTML)" for b in at.download_button)
    assert at.session_state["selection"]["cluster"] == "2"
    assert at.query_params["cluster"] == "2"

    goto(at, "Enrichment")
    assert at.radio(key="enrich_source").value == "cluster"
    assert at.query_params["cluster"] == "2"
    goto(at, "Co-expression")
    assert at.radio(key="coexp_focus").value == "cluster"
    assert int(at.metric[1].value) > 0  # asked genes drawn
    goto(at, "Embedding")
    assert "Cluster **2**" in texts(at.sidebar.markdown)

    # Clearing forgets it everywhere, the address included.
    at.button(key="clear_selection").click().run()
    assert at.session_state["selection"]["cluster"] is None
    assert "cluster" not in at.query_params


def test_a_shared_link_reopens_the_same_view(sim):
    embedding = sim.embedding
    gene = shared_gene(embedding)
    at = app({"run": "r", "res": "1", "cluster": "3", "gene": gene, "genes": "ACTB," + gene})
    goto(at, "Clusters")
    assert at.selectbox(key="cluster_picker").value == "3"
    assert not at.warning or "Simulated data" in texts(at.warning)
    goto(at, "Embedding")
    assert at.text_input(key="gene_query").value == gene
    spec = json.loads(chart(at, "umap-r").proto.spec)
    highlighted = spec["data"][-1]
    assert highlighted["name"] == f"{gene} (searched)"
    assert len(array(highlighted["x"])) == int((embedding.obs["gene"] == gene).sum())
    near = find_table(at, "gene", "cosine", "closest_instance")
    assert list(near["gene"]) == list(nearest_genes(embedding, gene, top=20)["gene"])
    assert at.session_state["selection"]["genes"] == ["ACTB", gene]
    assert at.query_params == {
        "run": "r",
        "res": "1",
        "cluster": "3",
        "gene": gene,
        "genes": f"ACTB,{gene}",
    }


def test_bad_link_values_warn_and_fall_back(sim):
    at = app(
        {
            "run": "nope",
            "res": "99",
            "cluster": "x1",
            "gene": "NOTAGENE",
            "genes": "ACTB,<script>,NOTAGENE2",
        }
    )
    goto(at, "Clusters")
    warnings = texts(at.warning)
    assert "'nope' is not a completed run" in warnings
    assert "Resolution must be between" in warnings
    assert "cluster is named by its number" in warnings
    assert "Gene 'NOTAGENE' is not in this run" in warnings
    assert "not gene symbols" in warnings and "NOTAGENE2" in warnings
    assert at.session_state["selection"]["genes"] == ["ACTB"]
    assert at.query_params == {"run": "r", "res": "1", "genes": "ACTB"}
    assert not at.error

    at = goto(app({"run": "r", "cluster": "999"}), "Embedding")
    assert "There is no cluster 999 at resolution 1" in texts(at.warning)
    assert "cluster" not in at.query_params


def test_clicking_and_lassoing_the_umap_select_a_cluster_and_a_gene_set(sim):
    embedding = sim.embedding
    labels = sim.labels
    at = goto(app(), "Embedding")
    datasets = embedding.obs["dataset"].astype(str).to_numpy()
    first = sorted(set(datasets))[0]
    rows = np.flatnonzero(datasets == first)  # trace 0 draws these rows in this order
    umap = chart(at, "umap-r")
    point = {"curve_number": 0, "point_index": 5, "point_number": 5, "x": 0, "y": 0}
    send(at, umap, {"selection": {"points": [point], "point_indices": [5], "box": [], "lasso": []}})
    assert at.session_state["selection"]["cluster"] == labels.iloc[rows[5]]
    assert f"Selected cluster {labels.iloc[rows[5]]}" in texts(at.success)
    assert at.query_params["cluster"] == labels.iloc[rows[5]]
    # The chosen cluster stays in colour, every other point is grey (one trace, drawn first),
    # and the chart is redrawn under a new key: no click fading or box is kept for export.
    cluster = labels.iloc[rows[5]]
    chosen = np.asarray(labels, dtype=str) == cluster
    redrawn = chart(at, "umap-r")
    assert redrawn.proto.id != umap.proto.id
    spec = json.loads(redrawn.proto.spec)
    assert spec["data"][0]["name"] == "other clusters"
    assert spec["data"][0]["marker"]["color"] == MUTED
    assert len(array(spec["data"][0]["x"])) == int((~chosen).sum())
    assert sum(len(array(t["x"])) for t in spec["data"][1:]) == int(chosen.sum())
    assert all(t["unselected"]["marker"]["opacity"] >= 0.35 for t in spec["data"])
    assert spec["layout"]["dragmode"] == "zoom"

    others = np.flatnonzero(~chosen)  # trace 0 now draws these rows in this order
    points = [{"curve_number": 0, "point_index": i, "x": 0, "y": 0} for i in range(12)]
    lasso = [{"xref": "x", "yref": "y", "x": [0, 1, 1], "y": [0, 0, 1]}]
    send(
        at,
        chart(at, "umap-r"),
        {"selection": {"points": points, "point_indices": [], "box": [], "lasso": lasso}},
    )
    expected = sorted(set(embedding.obs["gene"].astype(str).to_numpy()[others[:12]]))
    assert at.session_state["selection"]["genes"] == expected
    assert at.query_params["genes"] == ",".join(expected)
    goto(at, "Enrichment")
    assert (
        f"Gene set of {len(expected)} genes from a box/lasso of 12 points on the Embedding page"
        in at.radio(key="enrich_source").options
    )


def test_unknown_gene_is_an_error_with_suggestions_and_case_is_forgiven(sim):
    at = goto(app(), "Embedding")
    at.text_input(key="gene_query").input("ACTBX").run()
    assert not at.exception
    assert "Gene 'ACTBX' is not in this run's embedding" in texts(at.error)
    assert "Did you mean ACTB" in texts(at.error)
    assert at.session_state["selection"]["gene"] is None
    at.text_input(key="gene_query").input("actb").run()
    assert not at.error
    assert at.session_state["selection"]["gene"] == "ACTB"


def test_resolution_change_and_table_row_selection(sim):
    run = sim.run
    embedding = sim.embedding
    at = goto(app(), "Clusters")
    at.number_input(key="resolution_input").set_value(0.5).run()
    assert not at.exception and not at.error
    expected = cluster_summary(embedding, run_clustering(run, embedding, 0.5).labels)
    table = at.dataframe(key="clusters_table-r-0.5").value
    assert list(table["size"]) == list(expected["size"])
    assert at.query_params["res"] == "0.5"
    assert (run.root / "clusters" / "leiden-res0.5-seed0.csv").exists()

    send(
        at,
        at.dataframe(key="clusters_table-r-0.5"),
        {"selection": {"rows": [1], "columns": [], "cells": []}},
    )
    assert at.session_state["selection"]["cluster"] == expected["cluster"].iloc[1]
    assert at.selectbox(key="cluster_picker").value == expected["cluster"].iloc[1]


def test_enrichment_of_a_cluster_puts_its_planted_module_on_top(sim):
    ws = sim.ws
    run = sim.run
    embedding = sim.embedding
    labels = sim.labels
    planted = ws.root / "resources" / "planted_modules.gmt"
    background = run_background(ws, run)
    best = None
    for cluster in cluster_summary(embedding, labels)["cluster"]:
        genes = gene_occurrences(embedding, labels, cluster)["gene"]
        result = enrich_libraries(genes, [planted], background)
        if len(result) and result["adjusted_p_value"].iloc[0] < 1e-6:
            best = cluster, result
            break
    assert best is not None, "no cluster recovers a planted module"
    cluster, expected = best

    at = goto(app({"cluster": cluster}), "Enrichment")
    assert at.radio(key="enrich_source").value == "cluster"
    at.multiselect(key="enrich_libraries").set_value([str(planted)]).run()
    at.button(key="enrich_go").click().run()
    assert not at.exception and not at.error
    table = find_table(at, "term", "adjusted_p_value")
    assert len(table) == len(expected)
    assert table["term"].iloc[0] == expected["term"].iloc[0]
    assert table["term"].iloc[0].startswith("M0") or table["term"].iloc[0].startswith("M1")
    assert table["adjusted_p_value"].iloc[0] < 1e-6
    bars = json.loads(chart(at, "enrichment_bars").proto.spec)
    assert bars["data"][0]["y"][-1].startswith(expected["term"].iloc[0][:20])
    for trace in bars["data"]:  # every bar names its library
        assert trace["text"] == [short_library(trace["name"])] * len(trace["y"])
    assert any(b.label == "Download the results (CSV)" for b in at.download_button)


def test_enrichment_bad_inputs_are_clear_errors(sim, monkeypatch):
    ws = sim.ws
    at = goto(app(), "Enrichment")
    at.file_uploader(key="gmt_upload").set_value(("bad.gmt", b"SET_A\tonly two\n", "text/plain"))
    at.run()
    assert not at.exception
    assert "bad.gmt, line 1: 2 tab-separated field(s)" in texts(at.error)
    assert not (ws.root / "resources" / "genesets" / "bad.gmt").exists()

    good = b"MY_SET\tdesc\tACTB\tGAPDH\n"
    at.file_uploader(key="gmt_upload").set_value(("mine.gmt", good, "text/plain")).run()
    assert "Added mine" in texts(at.success)
    assert any(p.endswith("mine.gmt") for p in at.multiselect(key="enrich_libraries").value)

    import gseapy

    def offline(**kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(gseapy, "get_library", offline)
    at.text_input(key="enrichr_name").input("KEGG_2021_Human").run()
    at.button(key="enrichr_go").click().run()
    assert not at.exception
    assert "Enrichr is not reachable" in texts(at.error) and "offline" in texts(at.error)

    at.radio(key="enrich_source").set_value("typed").run()
    at.text_area(key="enrich_typed").input("NOTAGENE1, NOTAGENE2").run()
    assert "None of the typed genes is in this run" in texts(at.error)
    assert at.button(key="enrich_go").disabled


def test_coexpression_of_a_gene_merged_and_per_dataset(sim):
    ws = sim.ws
    run = sim.run
    embedding = sim.embedding
    gene = shared_gene(embedding)
    at = goto(app(), "Co-expression")
    at.text_input(key="coexp_gene").input(gene).run()
    assert not at.exception and not at.error
    expected = coexpression_subgraph(run_graphs(ws, run), [gene])
    merged = find_table(at, "source", "n_datasets", "mean_correlation")
    assert len(merged) == len(expected.merged)
    network = json.loads(chart(at, "coexp_network").proto.spec)
    names = [t.get("name") for t in network["data"]]
    assert "asked genes" in names and any(str(n).startswith("in ") for n in names)

    dataset = expected.edges["dataset"].value_counts().index[0]
    at.selectbox(key="coexp_view").set_value(dataset).run()
    edges = find_table(at, "source", "dataset", "correlation")
    assert len(edges) == int((expected.edges["dataset"] == dataset).sum())
    assert set(edges["dataset"]) == {dataset}

    at.slider(key="coexp_nodes").set_value(4).run()
    assert "Kept the 3 best-supported" in texts(at.info)
    assert len(find_table(at, "gene", "seed", "degree")) == 4


def test_benchmark_runs_the_evaluation_and_highlights_the_mean(sim):
    ws = sim.ws
    run = sim.run
    planted = str(ws.root / "resources" / "planted_modules.gmt")
    at = goto(app(), "Benchmark")
    at.multiselect(key="bench_baselines").set_value(["random"])
    at.multiselect(key="bench_libraries").set_value([planted])
    at.button(key="bench_go").click().run()
    assert not at.exception and not at.error
    # The evaluation runs in the background (musegnn_core.jobs); the page shows it when done.
    from musegnn_core.jobs import evaluation_status

    deadline = time.monotonic() + 300
    while evaluation_status(ws, run.name)["state"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    at.run()
    assert evaluation_status(ws, run.name)["state"] == "done" and not at.error
    stored = json.loads((run.root / "evaluation.json").read_text())
    assert set(stored["table"]) == {"musegnn", "random"}
    table = at.dataframe[0].value
    assert list(table.columns) == ["MuSe-GNN", "Random"]
    assert "Mean of six" in list(table.index)
    assert float(table.loc["Mean of six", "MuSe-GNN"]) == pytest.approx(
        stored["table"]["musegnn"]["mean_of_six"], abs=5e-4
    )
    assert "Common-gene rule" in texts(at.markdown)
    bars = json.loads(chart(at, "benchmark_bars").proto.spec)
    assert [t["name"] for t in bars["data"]] == ["MuSe-GNN", "Random"]
    assert chart(at, "benchmark_functional")

    # A fresh session reads the stored evaluation without running anything.
    at = goto(app(), "Benchmark")
    assert len(at.dataframe[0].value.columns) == 2


def test_a_gene_missing_from_the_run_says_why_and_can_be_pinned(sim):
    ws = sim.ws
    embedded = set(sim.embedding.obs["gene"].astype(str))
    dataset = ws.datasets()[0].name
    raw = ws.load_dataset(dataset)
    counts = np.asarray(raw.X.sum(axis=0)).ravel()
    missing = next(
        g for g, c in zip(raw.var_names, counts, strict=True) if g not in embedded and c > 50
    )
    at = goto(app(), "Embedding")
    at.text_input(key="gene_query").input(missing).run()
    assert f"Gene '{missing}' is not in this run's embedding" in texts(at.error)
    shown = texts(at.markdown)
    assert f"Why is {missing} not in this run?" in shown
    assert "is in the raw counts of" in shown and dataset in shown
    table = find_table(at, "dataset", "symbol", "reason")
    assert dataset in set(table["dataset"])
    assert all(
        r.startswith(("not among the", "removed by QC", "not expressed", "no one-to-one"))
        for r in table["reason"]
    )
    at.button(key="pin_gene").click().run()
    assert pinned_genes(ws) == [missing]
    assert f"Pinned {missing}" in texts(at.success)
    assert at.button(key="pin_gene").disabled  # already pinned

    # A made-up symbol gets no look-alike strangers as suggestions.
    at.text_input(key="gene_query").input("QQZ123").run()
    assert "Did you mean" not in texts(at.error)
    assert "is in none of the raw counts" in texts(at.markdown)


def test_a_shared_link_keeps_the_colouring(sim):
    at = goto(app({"color": "species"}), "Embedding")
    assert at.selectbox(key="umap_color").value == "species"
    spec = json.loads(chart(at, "umap-r").proto.spec)
    assert {t["name"] for t in spec["data"]} == set(sim.embedding.obs["species"].astype(str))
    assert at.query_params["color"] == "species"
    goto(at, "Clusters")
    assert at.query_params["color"] == "species"  # kept while moving between pages

    at = goto(app({"color": "nonsense"}), "Embedding")
    assert "The link's colouring 'nonsense' is not one of" in texts(at.warning)
    assert at.selectbox(key="umap_color").value == "dataset"


def test_coexpression_minimum_correlation_and_sign_in_the_merged_view(sim):
    at = goto(app({"cluster": "0"}), "Co-expression")
    assert at.radio(key="coexp_focus").value == "cluster"
    network = json.loads(chart(at, "coexp_network").proto.spec)
    title = network["layout"]["title"]["text"]
    assert title.startswith("Cluster 0 · ")
    names = [str(t.get("name")) for t in network["data"]]
    assert any(n.endswith("r > 0") for n in names)
    negative = [t for t in network["data"] if str(t.get("name")).endswith("r < 0")]
    assert all(t["line"]["dash"] == "dot" for t in negative)
    at.slider(key="coexp_min_r").set_value(0.5).run()
    assert not at.exception and not at.error
    edges = find_table(at, "source", "dataset", "correlation")
    assert (edges["correlation"].abs() >= 0.5).all()
    assert "Edges with |r| below 0.5 are hidden" in texts(at.info)
    spec = json.loads(chart(at, "coexp_network").proto.spec)
    drawn = [t for t in spec["data"] if t.get("name") in ("neighbour genes", "asked genes")]
    n_nodes = sum(len(array(t["x"])) for t in drawn)
    if n_nodes > 30:  # a large view names its 12 hubs only, above the markers
        assert all(t["mode"] == "markers" for t in drawn)
        assert len(spec["layout"]["annotations"]) == 12
    else:
        assert all(len(t["text"]) == len(array(t["x"])) for t in drawn)


def test_benchmark_says_in_plain_words_what_each_score_rewards(sim):
    from musegnn_core.storage import atomic_write_json

    six = {"asw": 0.6, "auc": 0.8, "ilisi": 0.3, "gc": 0.9, "cgr": 0.4, "no": 0.2}
    random = {"asw": 0.9, "auc": 0.5, "ilisi": 0.8, "gc": 0.95, "cgr": 0.0, "no": 0.01}
    table = {
        method: {
            **scores,
            "mean_of_six": sum(scores.values()) / 6,
            "coherence:planted": c,
            "coherence_unified_matched:planted": c,
            "coherence_unified[0]:planted": c,
            "coherence_within_by_set_size[1-100]:planted": c,
            "coherence_unified_per_set:planted": c,
        }
        for method, scores, c in (("musegnn", six, 0.8), ("random", random, 0.5))
    }
    atomic_write_json(
        sim.run.evaluation_path,
        {"created_at": "2026-01-01T00:00:00", "seconds": 1.0, "seed": 0, "table": table},
    )
    at = goto(app(), "Benchmark")
    assert "How to read this table" in [h.value for h in at.subheader]
    notes = texts(at.info)
    assert "random scores near their maximum" in notes
    assert "Here random beats MuSe-GNN on ASW and iLISI; this is expected" in notes
    assert "MuSe-GNN is ahead of every baseline on 8 of the structure and function" in notes
    reading = find_table(at, "score", "what it rewards")
    rewards = dict(zip(reading["score"], reading["what it rewards"], strict=True))
    assert rewards["iLISI"].startswith("mixing")
    assert rewards["AUC (graph edges)"].startswith("structure")
    assert all(len(text) > 20 for text in rewards.values())
    assert (
        "only which genes belong together counts"
        in rewards["Unified coherence, gene-matched (planted)"]
    )
    assert (
        "held together by no dataset"
        in rewards["Unified coherence, pairs no dataset holds together (planted)"]
    )
    assert (
        "smallest shared set has 1-100 genes"
        in rewards["Coherence within datasets, pairs sharing a set of 1-100 genes (planted)"]
    )
    assert (
        "broad terms count no more than its specific processes"
        in rewards["Unified coherence, each set weighing the same (planted)"]
    )

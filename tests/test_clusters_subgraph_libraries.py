"""Functional gene groups, co-expression subgraphs and gene-set libraries (issue 5)."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from musegnn_core.analysis.clusters import (
    cluster_genes,
    cluster_summary,
    composition,
    gene_occurrences,
    run_clustering,
)
from musegnn_core.analysis.enrich import enrich_libraries, run_background
from musegnn_core.analysis.evaluate import load_embedding, run_graphs
from musegnn_core.analysis.genesets import read_gmt
from musegnn_core.analysis.libraries import (
    enrichr_dir,
    fetch_enrichr_library,
    list_libraries,
    resolve_libraries,
    save_uploaded_library,
)
from musegnn_core.analysis.metrics import common_genes
from musegnn_core.analysis.subgraph import coexpression_subgraph
from musegnn_core.cli import main
from musegnn_core.data.demo import resources_dir
from musegnn_core.errors import InputFileError, ValidationError
from musegnn_core.runs import get_run
from musegnn_core.workspace import Workspace
from tests.factories import FakeGraph


# ------------------------------------------------------------------ clusters
def small_embedding() -> tuple[ad.AnnData, pd.Series]:
    obs = pd.DataFrame(
        {
            "gene": ["A", "B", "C", "A", "B", "D", "A", "E"],
            "dataset": ["h1"] * 3 + ["h2"] * 3 + ["m1"] * 2,
            "tissue": ["blood"] * 3 + ["brain"] * 3 + ["blood"] * 2,
            "modality": ["scrna"] * 6 + ["spatial"] * 2,
            "species": ["human"] * 6 + ["mouse"] * 2,
        }
    )
    obs.index = (obs["dataset"] + ":" + obs["gene"]).to_numpy()
    emb = ad.AnnData(X=np.zeros((8, 2), dtype=np.float32), obs=obs)
    labels = pd.Series(["0", "0", "1", "0", "1", "1", "0", "0"], index=obs.index)
    return emb, labels


def test_cluster_summary_by_hand():
    emb, labels = small_embedding()
    table = cluster_summary(emb, labels).set_index("cluster")
    # cluster 0: h1:A h1:B h2:A m1:A m1:E -> genes A (3 datasets), B, E
    assert table.loc["0", "size"] == 5 and table.loc["0", "n_genes"] == 3
    assert table.loc["0", "n_datasets"] == 3
    assert table.loc["0", "n_shared_genes"] == 1 and table.loc["0", "shared_genes"] == "A"
    assert table.loc["0", "datasets"] == "h1 40%, m1 40%, h2 20%"
    # B (blood only in cluster 0) and E (blood only); A spans blood and brain
    assert table.loc["0", "n_tissue_only_genes"] == 2
    # cluster 1: h1:C h2:B h2:D -> no gene from two datasets; all scRNA
    assert table.loc["1", "n_shared_genes"] == 0 and table.loc["1", "n_modality_only_genes"] == 3
    counts = composition(emb, labels, by="dataset")
    assert counts.loc["0"].to_dict() == {"h1": 2, "h2": 1, "m1": 2}
    assert counts.values.sum() == emb.n_obs
    with pytest.raises(ValidationError):
        composition(emb, labels, by="colour")


def test_gene_occurrences_marks_shared_and_specific_genes():
    emb, labels = small_embedding()
    genes = gene_occurrences(emb, labels, "0").set_index("gene")
    assert list(genes.index) == ["A", "B", "E"]  # most datasets first
    assert genes.loc["A", "n_datasets"] == 3 and genes.loc["A", "shared"]
    assert genes.loc["A", "datasets"] == "h1, h2, m1" and genes.loc["A", "specific_to"] == ""
    assert genes.loc["B", "n_datasets_in_run"] == 2  # B is also in h2 (cluster 1)
    assert genes.loc["B", "specific_to"] == "tissue: blood"
    assert genes.loc["E", "species"] == "mouse"
    with pytest.raises(ValidationError, match="No cluster '7'"):
        gene_occurrences(emb, labels, "7")


def test_common_gene_rule_falls_back_when_too_few_genes_are_in_all_datasets():
    genes = ["G0"] * 4 + [f"H{i}" for i in range(12)] * 2 + [f"L{i}" for i in range(30)]
    datasets = ["a", "b", "c", "d"] + ["a"] * 12 + ["b"] * 12 + ["c"] * 30
    emb = ad.AnnData(
        X=np.zeros((len(genes), 2), dtype=np.float32),
        obs=pd.DataFrame({"gene": genes, "dataset": datasets}, index=map(str, range(len(genes)))),
    )
    chosen, fraction, note = common_genes(emb)
    assert chosen == sorted(["G0", *(f"H{i}" for i in range(12))]) and fraction == 0.5
    assert "only 1 gene in all" in note
    # with enough genes in all datasets the strict rule stands
    assert common_genes(emb, min_genes=1) == (["G0"], 1.0, "all datasets")


def test_run_clustering_caches_each_resolution(trained_sim_workspace):
    ws = Workspace.open(trained_sim_workspace)
    run = get_run(ws, "r")
    emb = load_embedding(run)
    trained = run_clustering(run, emb)
    assert trained.cached and trained.resolution == 1.0
    assert trained.labels.value_counts().is_monotonic_decreasing  # "0" is the largest
    coarse = run_clustering(run, emb, 0.3)
    assert not coarse.cached and coarse.labels.nunique() < trained.labels.nunique()
    files = list((run.root / "clusters").glob("*.csv"))
    assert len(files) == 1
    again = run_clustering(run, emb, 0.3)
    assert again.cached and (again.labels == coarse.labels).all()
    with pytest.raises(ValidationError, match="between"):
        run_clustering(run, emb, 60)  # beyond the one range (settings.py)


def test_planted_modules_come_out_as_clusters_and_as_enriched_sets(trained_sim_workspace):
    """Each simulated module well represented in the graphs is the top term of a cluster."""
    ws = Workspace.open(trained_sim_workspace)
    run = get_run(ws, "r")
    emb = load_embedding(run)
    gmt = resources_dir(ws) / "planted_modules.gmt"
    modules = read_gmt(gmt)
    background = run_background(ws, run)
    testable = {m for m, genes in modules.items() if len(set(genes) & background) >= 8}
    assert len(testable) >= 4
    labels = run_clustering(run, emb).labels
    found: dict[str, list[str]] = {}
    for cluster in sorted(labels.unique()):
        table = enrich_libraries(cluster_genes(emb, labels, cluster), [gmt], background)
        if len(table) and table["adjusted_p_value"].iloc[0] < 1e-4:
            found.setdefault(table["term"].iloc[0], []).append(cluster)
    assert testable <= set(found), f"not recovered: {sorted(testable - set(found))}"
    # and most of the module's rows sit in clusters where it is the top term
    for module in testable:
        rows = emb.obs["gene"].isin(modules[module]).to_numpy()
        assert labels[rows].isin(found[module]).mean() >= 0.5, module


# ------------------------------------------------------------------ subgraph
def fake_graph(name: str, genes: list[str], edges: list[tuple[int, int]], seed: int = 0):
    n = len(genes)
    A = np.eye(n, dtype=np.uint8)
    for a, b in edges:
        A[a, b] = A[b, a] = 1
    rng = np.random.default_rng(seed)
    return FakeGraph(name, genes, sp.csr_matrix(A), rng.normal(size=(n, 40)))


def test_subgraph_edges_and_support_by_hand():
    g1 = fake_graph("d1", ["A", "B", "C", "D"], [(0, 1), (1, 2), (0, 3)])
    g2 = fake_graph("d2", ["B", "A", "C"], [(0, 1), (0, 2)], seed=1)  # A-B, B-C
    view = coexpression_subgraph({"d1": g1, "d2": g2}, ["A"], max_neighbours=5)
    assert set(view.nodes["gene"]) == {"A", "B", "D"}  # C is no neighbour of A
    merged = {(s, t): n for s, t, n in view.merged[["source", "target", "n_datasets"]].values}
    assert merged == {("A", "B"): 2, ("A", "D"): 1}
    assert view.nodes.set_index("gene").loc["A", "seed"]
    assert view.nodes.set_index("gene").loc["D", "datasets"] == "d1"
    assert view.nodes.set_index("gene").loc["A", "degree"] == 2
    assert view.edges.groupby("dataset").size().to_dict() == {"d1": 2, "d2": 1}
    # a cluster view: edges among the given genes, in every dataset that has them
    cluster = coexpression_subgraph({"d1": g1, "d2": g2}, ["A", "B", "C"], max_neighbours=0)
    merged = {(s, t): n for s, t, n in cluster.merged[["source", "target", "n_datasets"]].values}
    assert merged == {("A", "B"): 2, ("B", "C"): 2}
    assert np.isfinite(view.nodes[["x", "y"]].to_numpy()).all()
    assert not view.truncated
    only_d2 = coexpression_subgraph({"d1": g1, "d2": g2}, ["A"], datasets=["d2"])
    assert set(only_d2.edges["dataset"]) == {"d2"}


def test_subgraph_respects_its_bounds_around_a_hub():
    genes = [f"G{i}" for i in range(400)]
    hub_edges = [(0, j) for j in range(1, 400)] + [(j, j + 1) for j in range(1, 399)]
    g1 = fake_graph("d1", genes, hub_edges)
    g2 = fake_graph("d2", genes[::-1], [(399, j) for j in range(0, 399)], seed=2)
    view = coexpression_subgraph(
        {"d1": g1, "d2": g2}, ["G0"], max_neighbours=15, max_nodes=20, max_edges=40
    )
    assert len(view.nodes) <= 20 and len(view.merged) <= 40
    assert view.edges[["source", "target"]].drop_duplicates().shape[0] <= 40
    assert view.truncated and any("best-supported" in n for n in view.notes)
    # neighbours kept are the strongest by |residual correlation|, per dataset
    view5 = coexpression_subgraph({"d1": g1}, ["G0"], max_neighbours=5, max_nodes=100)
    features = g1.features - g1.features.mean(axis=1, keepdims=True)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    strength = np.abs(features[1:] @ features[0])
    expected = {f"G{j + 1}" for j in np.argsort(-strength)[:5]}
    assert set(view5.nodes["gene"]) - {"G0"} == expected
    many = coexpression_subgraph({"d1": g1}, genes[:300], max_nodes=50)
    assert len(many.nodes) == 50 and "Showing 50 of the 300" in many.notes[0]


def test_subgraph_bad_requests():
    g1 = fake_graph("d1", ["A", "B"], [(0, 1)])
    with pytest.raises(ValidationError, match="in the chosen datasets"):
        coexpression_subgraph({"d1": g1}, ["NOPE"])
    with pytest.raises(ValidationError, match="max_nodes"):
        coexpression_subgraph({"d1": g1}, ["A"], max_nodes=10**6)
    with pytest.raises(ValidationError, match="not one of this run"):
        coexpression_subgraph({"d1": g1}, ["A"], datasets=["x"])
    with pytest.raises(ValidationError):
        coexpression_subgraph({"d1": g1}, [])


# ----------------------------------------------------------------- libraries
GMT = "SET_A\tdesc\tA\tB\tC\nSET_B\t\tC\tD\n"


def test_uploaded_library_is_checked_and_kept(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    lib = save_uploaded_library(ws, "../../My sets.gmt", GMT.encode())
    assert lib.path.parent == ws.root / "resources" / "genesets" and lib.path.exists()
    assert read_gmt(lib.path) == {"SET_A": ["A", "B", "C"], "SET_B": ["C", "D"]}
    assert lib.name in {x.name for x in list_libraries(ws)}
    before = sorted(p.name for p in lib.path.parent.iterdir())
    with pytest.raises(InputFileError, match="line 1"):
        save_uploaded_library(ws, "bad.gmt", b"only-one-field\n")
    with pytest.raises(InputFileError, match=r"not a \.gmt"):
        save_uploaded_library(ws, "evil.pkl", GMT.encode())
    assert sorted(p.name for p in lib.path.parent.iterdir()) == before
    assert resolve_libraries(ws, [lib.name]) == [lib.path]
    assert resolve_libraries(ws, [str(lib.path.parent)]) == [lib.path]
    with pytest.raises(ValidationError, match="No gene-set library"):
        resolve_libraries(ws, ["nothing-like-this"])


def test_enrichr_library_is_cached_and_offline_is_said(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    calls = []

    def offline(**kwargs):
        calls.append(kwargs)
        raise ConnectionError("no route to host")

    with pytest.raises(ValidationError, match=r"offline.*Cached Enrichr libraries: none yet"):
        fetch_enrichr_library(ws, "KEGG_2021_Human", fetch=offline)
    assert not enrichr_dir(ws).exists() or not any(enrichr_dir(ws).iterdir())

    def online(name, organism):
        return {"Pathway one": ["A", "B"], "Pathway\ttwo": ["C", " "]}

    lib = fetch_enrichr_library(ws, "KEGG_2021_Human", fetch=online)
    assert read_gmt(lib.path) == {"Pathway one": ["A", "B"], "Pathway two": ["C"]}
    # the cache answers without the network
    assert fetch_enrichr_library(ws, "KEGG_2021_Human", fetch=offline).path == lib.path
    with pytest.raises(ValidationError, match="Cached Enrichr libraries: KEGG_2021_Human"):
        fetch_enrichr_library(ws, "GO_2023", fetch=offline)
    with pytest.raises(ValidationError, match="not an Enrichr library name"):
        fetch_enrichr_library(ws, "../etc/passwd", fetch=online)


# ----------------------------------------------------------------------- CLI
def test_cli_clusters_subgraph_libraries(trained_sim_workspace, capsys):
    ws = str(trained_sim_workspace)
    assert main(["clusters", "-w", ws, "--run", "r", "--json"]) == 0
    clusters = json.loads(capsys.readouterr().out)
    emb = load_embedding(get_run(Workspace.open(trained_sim_workspace), "r"))
    assert sum(c["size"] for c in clusters) == emb.n_obs
    assert main(["clusters", "-w", ws, "--run", "r", "--cluster", "0", "--json"]) == 0
    genes = json.loads(capsys.readouterr().out)
    assert len(genes) == clusters[0]["n_genes"]
    gene = genes[0]["gene"]
    args = ["subgraph", "-w", ws, "--run", "r", "--gene", gene, "--max-nodes", "8", "--json"]
    assert main(args) == 0
    view = json.loads(capsys.readouterr().out)
    assert 1 <= len(view["nodes"]) <= 8 and view["nodes"][0]["gene"] == gene
    graphs = run_graphs(
        Workspace.open(trained_sim_workspace), get_run(Workspace.open(trained_sim_workspace), "r")
    )
    assert {e["dataset"] for e in view["edges"]} <= set(graphs)
    assert main(["subgraph", "-w", ws, "--run", "r", "--cluster", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["nodes"]
    assert main(["libraries", "-w", ws, "--json"]) == 0
    names = {row["name"] for row in json.loads(capsys.readouterr().out)}
    assert "planted_modules" in names
    out_csv = trained_sim_workspace.parent / "enrich.csv"
    enrich = ["enrich", "-w", ws, "--run", "r", "--cluster", "0", "--gene-sets", "planted_modules"]
    assert main([*enrich, "--output", str(out_csv)]) == 0
    capsys.readouterr()
    assert pd.read_csv(out_csv)["term"].str.startswith("M").all()
    for bad in (
        ["clusters", "-w", ws, "--run", "r", "--resolution", "0"],
        ["clusters", "-w", ws, "--run", "r", "--cluster", "999"],
        ["subgraph", "-w", ws, "--run", "r", "--gene", "NOT_A_GENE"],
        ["subgraph", "-w", ws, "--run", "r", "--gene", gene, "--max-neighbours", "-1"],
        ["enrich", "-w", ws, "--run", "r", "--cluster", "0"],
        ["enrich", "-w", ws, "--run", "r", "--cluster", "0", "--gene-sets", "nope"],
    ):
        assert main(bad) == 2, bad
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err

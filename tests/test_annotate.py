"""Annotated gene programs: labels, hub genes and top terms of every cluster of a run."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from musegnn_core.analysis.annotate import (
    annotate_after_training,
    benjamini_hochberg,
    cluster_gene_table,
    enrich_selections,
    make_label,
    row_centrality,
    run_annotations,
    run_graph_adjacency,
    short_term,
)
from musegnn_core.analysis.clusters import gene_occurrences, run_clustering
from musegnn_core.analysis.enrich import enrich_genes, run_background
from musegnn_core.analysis.evaluate import load_embedding
from musegnn_core.analysis.genesets import read_gmt
from musegnn_core.paths import PROJECT_ROOT
from musegnn_core.runs import get_run
from musegnn_core.workspace import Workspace


@pytest.fixture
def sim_run(trained_sim_workspace):
    ws = Workspace.open(trained_sim_workspace, create=False)
    run = get_run(ws, "r")
    embedding = load_embedding(run)
    labels = run_clustering(run, embedding).labels
    planted = ws.root / "resources" / "planted_modules.gmt"
    return SimpleNamespace(ws=ws, run=run, embedding=embedding, labels=labels, planted=planted)


def unpack(sim):
    return sim.ws, sim.run, sim.embedding, sim.labels, sim.planted


def test_short_term_reads_like_a_name():
    assert short_term("HALLMARK_MYC_TARGETS_V1") == "MYC targets V1"
    assert short_term("HALLMARK_TNFA_SIGNALING_VIA_NFKB") == "TNFA signaling via NFKB"
    assert short_term("HALLMARK_IL2_STAT5_SIGNALING") == "IL2 STAT5 signaling"
    assert short_term("HALLMARK_G2M_CHECKPOINT") == "G2M checkpoint"
    assert (
        short_term("regulation of T cell activation (GO:0050863)")
        == "regulation of T cell activation"
    )
    assert short_term("M01_core_all") == "M01_core_all"


def test_labels_fall_back_to_hub_genes_and_skip_redundant_terms():
    hubs = [{"gene": g} for g in ("A", "B", "C", "D")]
    assert make_label([], hubs, 12) == ("hub genes A, B, C · 12 genes", "hub genes")
    terms = [
        {"name": "MYC targets V1", "term": "t1", "genes": "A;B;C", "adjusted_p_value": 1e-9,
         "p_value": 1e-10},
        {"name": "MYC targets V2", "term": "t2", "genes": "A;B;C;D", "adjusted_p_value": 1e-5,
         "p_value": 1e-6},
        {"name": "E2F targets", "term": "t3", "genes": "E;F", "adjusted_p_value": 1e-3,
         "p_value": 1e-4},
    ]  # fmt: skip
    assert make_label(terms, hubs, 38) == ("MYC targets V1 / E2F targets · 38 genes", "terms")


def test_benjamini_hochberg_matches_the_textbook_step_up():
    p = np.array([0.01, 0.04, 0.03, 0.2, 0.001])
    n = len(p)
    order = np.argsort(p)
    expected = np.empty(n)
    running = 1.0
    for rank in range(n, 0, -1):
        i = order[rank - 1]
        running = min(running, p[i] * n / rank)
        expected[i] = running
    assert np.allclose(benjamini_hochberg(p), expected)


def test_vectorised_enrichment_equals_gseapy_for_every_cluster(sim_run):
    ws, run, embedding, labels, planted = unpack(sim_run)
    background = sorted(run_background(ws, run))
    sets = read_gmt(planted)
    clusters = sorted(set(labels))[:6]
    selections = {c: gene_occurrences(embedding, labels, c)["gene"].tolist() for c in clusters}
    fast = enrich_selections(selections, sets, background, "planted")
    for cluster in clusters:
        slow = enrich_genes(selections[cluster], sets, background, library="planted")
        mine = fast[cluster]
        assert list(mine["term"]) == list(slow["term"])
        assert list(mine["overlap"]) == list(slow["overlap"])
        assert np.allclose(mine["p_value"].astype(float), slow["p_value"].astype(float), rtol=1e-9)
        assert np.allclose(
            mine["adjusted_p_value"].astype(float),
            slow["adjusted_p_value"].astype(float),
            rtol=1e-9,
        )
        assert np.allclose(
            mine["odds_ratio"].astype(float), slow["odds_ratio"].astype(float), rtol=1e-9
        )
        assert [set(g.split(";")) for g in mine["genes"]] == [
            set(g.split(";")) for g in slow["genes"]
        ]


def test_every_planted_module_cluster_is_labelled_with_its_module(sim_run):
    ws, run, embedding, labels, planted = unpack(sim_run)
    annotations = run_annotations(ws, run)
    assert annotations.libraries == ["planted_modules"]  # simulated run: its own library
    names = annotations.labels()
    obs = embedding.obs.assign(cluster=np.asarray(labels, dtype=str))
    checked = 0
    for module, members in read_gmt(planted).items():
        counts = obs[obs["gene"].astype(str).isin(members)].groupby("cluster")["gene"].nunique()
        # A module "has a cluster" where at least five of its genes and most of the
        # cluster's genes are the module's.
        for cluster, n in counts.items():
            size = obs.loc[obs["cluster"] == cluster, "gene"].nunique()
            if n >= 5 and n / size >= 0.5:
                assert module in names[cluster], (module, cluster, names[cluster])
                record = annotations.cluster(cluster)
                assert record["labelled_by"] == "terms"
                assert record["top_terms"][0]["term"] == module
                assert record["top_terms"][0]["adjusted_p_value"] < 0.05
                checked += 1
    assert checked >= 4, "too few planted modules form a cluster to test the labels"
    unnamed = [c for c in annotations.clusters if c["labelled_by"] == "hub genes"]
    for record in unnamed:
        assert record["label"].startswith("hub genes ") and not record["top_terms"]


def test_hub_genes_are_the_most_central_rows_with_their_coexpression_degree(sim_run):
    ws, run, embedding, labels, _planted = unpack(sim_run)
    annotations = run_annotations(ws, run)
    record = annotations.clusters[0]
    cluster = record["cluster"]
    rows = np.flatnonzero(np.asarray(labels, dtype=str) == cluster)
    X = np.asarray(embedding.X, dtype=float)[rows]
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    similarity = X @ X.T
    mean_to_others = (similarity.sum(axis=1) - 1) / (len(rows) - 1)
    assert np.allclose(row_centrality(embedding, labels)[rows], mean_to_others)
    by_gene = (
        pd.Series(mean_to_others, index=embedding.obs["gene"].astype(str).to_numpy()[rows])
        .groupby(level=0)
        .mean()
        .sort_values(ascending=False)
    )
    hubs = [h["gene"] for h in record["hub_genes"]]
    assert hubs == list(by_gene.index[: len(hubs)])
    graphs = run_graph_adjacency(ws, run)
    members = set(embedding.obs["gene"].astype(str).to_numpy()[rows])
    hub = record["hub_genes"][0]
    neighbours = set()
    for graph in graphs.values():
        if hub["gene"] in graph.genes:
            i = graph.genes.index(hub["gene"])
            row = graph.adjacency[i].indices
            neighbours |= {graph.genes[j] for j in row if j != i} & members
    assert hub["coexpression_degree"] == len(neighbours)
    table = cluster_gene_table(embedding, labels, cluster, graphs)
    assert list(table["gene"][: len(hubs)]) == hubs
    assert table["centrality"].is_monotonic_decreasing


def test_annotations_are_cached_per_resolution_and_library_set(sim_run, tmp_path):
    ws, run, _embedding, _labels, planted = unpack(sim_run)
    # The training itself annotated the run (train.py calls annotate_after_training).
    assert list((run.root / "annotations").glob("res1-seed0-*.json"))
    first = run_annotations(ws, run)
    assert first.cached
    again = run_annotations(ws, run, 0.5)
    assert not again.cached and again.resolution == 0.5
    assert run_annotations(ws, run, 0.5).cached
    subset = tmp_path / "two.gmt"
    sets = read_gmt(planted)
    subset.write_text("".join(f"{n}\t\t" + "\t".join(g) + "\n" for n, g in list(sets.items())[:2]))
    other = run_annotations(ws, run, None, [subset])
    assert not other.cached and other.libraries == ["two"]
    assert len(list((run.root / "annotations").glob("*.json"))) == 3
    recomputed = run_annotations(ws, run, recompute=True)
    assert not recomputed.cached and recomputed.labels() == first.labels()
    # An edited library is read again.
    subset.write_text(subset.read_text() + "EXTRA\t\tACTB\tGAPDH\n")
    assert not run_annotations(ws, run, None, [subset]).cached


def test_annotation_failure_never_raises(sim_run, capsys):
    ws, run = sim_run.ws, sim_run.run
    # The graphs the run was trained on are gone: the annotation cannot be made.
    for info in ws.graphs_dir.glob("*/*/graph.json"):
        info.unlink()
    for cached in (run.root / "annotations").glob("*.json"):
        cached.unlink()
    assert annotate_after_training(ws, run) is None
    assert "clusters not annotated" in capsys.readouterr().err


def test_clusters_json_gives_label_hub_genes_and_top_terms(sim_run):
    ws, _run, _embedding, labels, _planted = unpack(sim_run)
    command = [sys.executable, "-m", "musegnn_core", "clusters", "-w", str(ws.root)]
    out = subprocess.run(
        [*command, "--run", "r", "--json"], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    assert len(records) == labels.nunique()
    for record in records:
        assert record["label"].endswith(f"· {record['n_genes']} genes")
        assert record["hub_genes"] and {"gene", "centrality", "coexpression_degree"} <= set(
            record["hub_genes"][0]
        )
        assert isinstance(record["top_terms"], list)
    assert any(
        r["top_terms"] and r["top_terms"][0]["library"] == "planted_modules" for r in records
    )

    out = subprocess.run(
        [*command, "--run", "r", "--cluster", "0"], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("cluster 0 · ")
    out = subprocess.run(
        [*command, "--run", "r", "--gene-sets", "nope.gmt"], capture_output=True, text=True,
        cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert out.returncode == 2 and out.stderr.startswith("error: No gene-set library 'nope.gmt'")

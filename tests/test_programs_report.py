"""Missing genes and pins, the cluster palette, co-expression |r| filter, the Benchmark
reading and the self-contained report."""

from __future__ import annotations

import html
import itertools
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from musegnn_core.analysis.annotate import run_annotations
from musegnn_core.analysis.evaluate import load_embedding, run_graphs
from musegnn_core.analysis.missing import explain_missing_gene, suggest_genes, symbol_family
from musegnn_core.analysis.reading import benchmark_reading, metric_reading
from musegnn_core.analysis.subgraph import coexpression_subgraph, keep_correlated
from musegnn_core.colors import _lab, cluster_colors, distinct_colors
from musegnn_core.errors import ValidationError
from musegnn_core.paths import PROJECT_ROOT
from musegnn_core.pins import pin_genes, pinned_genes, pinned_path, unpin_genes
from musegnn_core.report import build_report
from musegnn_core.runs import get_run
from musegnn_core.workspace import Workspace


@pytest.fixture
def sim(trained_sim_workspace):
    ws = Workspace.open(trained_sim_workspace, create=False)
    return ws, get_run(ws, "r")


def test_symbol_family_and_suggestions_never_offer_strangers():
    assert symbol_family("MKI67") == "MKI"
    assert symbol_family("HLA-DRB1") == "HLA-DRB"
    assert symbol_family("CD74") == "CD"
    assert symbol_family("ACTB") == "ACT"
    run = ["SMIM7", "MAPK6", "MKI67IP", "CD3E", "CDK1", "CD74", "cd4", "TOP2B", "ACTG1"]
    assert [s["gene"] for s in suggest_genes("MKI67", run)] == ["MKI67IP"]
    assert [s["gene"] for s in suggest_genes("CD8A", run)] == ["CD3E", "CD74", "cd4"]
    assert suggest_genes("CD4", run)[0] == {"gene": "cd4", "why": "the same symbol, another case"}
    assert suggest_genes("QQZ1", run) == []


def test_pinned_genes_are_kept_in_the_workspace(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    assert pinned_genes(ws) == []
    assert pin_genes(ws, ["MKI67", "TOP2A"]) == ["MKI67", "TOP2A"]
    assert pin_genes(ws, ["TOP2A", "CD74"]) == ["MKI67", "TOP2A", "CD74"]
    assert pinned_genes(Workspace.open(ws.root)) == ["MKI67", "TOP2A", "CD74"]
    assert unpin_genes(ws, ["TOP2A"]) == ["MKI67", "CD74"]
    before = pinned_path(ws).read_text()
    with pytest.raises(ValidationError, match="not a gene symbol; nothing was pinned"):
        pin_genes(ws, ["GAPDH", "<script>"])
    assert pinned_path(ws).read_text() == before
    assert not list(pinned_path(ws).parent.glob(".tmp-*"))


def test_missing_gene_reasons_per_dataset(sim):
    ws, run = sim
    embedding = load_embedding(run)
    embedded = set(embedding.obs["gene"].astype(str))
    meta = ws.datasets()[0]
    raw = ws.load_dataset(meta.name)
    counts = np.asarray(raw.X.sum(axis=0)).ravel()
    cells = np.asarray((raw.X > 0).sum(axis=0)).ravel()
    names = list(raw.var_names)
    selected_out = next(
        g for g, c in zip(names, cells, strict=True) if g not in embedded and c >= 20
    )
    result = explain_missing_gene(ws, run, selected_out, sorted(embedded))
    row = result.datasets.set_index("dataset").loc[meta.name]
    assert row["reason"].startswith("not among the") and row["symbol"] == selected_out
    assert row["counts"] == int(counts[names.index(selected_out)])
    assert f"{selected_out} is in the raw counts of" in result.summary
    unexpressed = [g for g, c in zip(names, counts, strict=True) if c == 0 and g not in embedded]
    if unexpressed:
        result = explain_missing_gene(ws, run, unexpressed[0], sorted(embedded))
        reasons = result.datasets.set_index("dataset")["reason"]
        assert reasons[meta.name] == "not expressed: no counts in this dataset"
    none = explain_missing_gene(ws, run, "QQZ123", sorted(embedded))
    assert none.datasets.empty and "in none of the raw counts" in none.summary
    with pytest.raises(ValidationError):
        explain_missing_gene(ws, run, "<b>", sorted(embedded))


def test_cluster_palette_is_distinct_and_readable():
    colors = distinct_colors(40)
    assert len(set(colors)) == 40
    lab = _lab(np.array([[int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)] for c in colors]))
    closest = min(np.linalg.norm(lab[i] - lab[j]) for i, j in itertools.combinations(range(40), 2))
    assert closest > 15  # CIELAB delta E: clearly different colours
    assert lab[:, 0].max() <= 66  # dark enough for white paper and a projector
    mapping = cluster_colors([str(i) for i in range(12)])
    assert mapping["0"] != mapping["10"] and list(mapping) == [str(i) for i in range(12)]


def test_minimum_correlation_hides_weak_edges_and_recounts(sim):
    ws, run = sim
    graphs = run_graphs(ws, run)
    gene = load_embedding(run).obs["gene"].astype(str).value_counts().index[0]
    view = coexpression_subgraph(graphs, [gene], max_neighbours=20)
    strong = keep_correlated(view, 0.3)
    assert (strong.edges["correlation"].abs() >= 0.3).all()
    assert len(strong.merged) <= len(view.merged)
    assert list(strong.nodes["x"]) == list(view.nodes["x"])  # the picture stays
    degree = pd.concat([strong.merged["source"], strong.merged["target"]]).value_counts()
    assert dict(zip(strong.nodes["gene"], strong.nodes["degree"], strict=True)) == {
        g: int(degree.get(g, 0)) for g in strong.nodes["gene"]
    }
    assert keep_correlated(view, 0.0) is view
    with pytest.raises(ValidationError):
        keep_correlated(view, 1.5)


def test_benchmark_reading():
    table = pd.DataFrame(
        {"musegnn": [0.5, 0.8, 0.3], "random": [0.9, 0.5, 0.7]}, index=["asw", "auc", "ilisi"]
    )
    notes = benchmark_reading(table)
    assert "random beats MuSe-GNN on ASW and iLISI" in notes[0]
    assert "ahead of every baseline on 1" in notes[1]
    assert metric_reading("coherence:hallmark").startswith("function")
    assert benchmark_reading(table[["musegnn"]]) == []


def test_report_is_self_contained(sim, tmp_path):
    ws, run = sim
    text = build_report(ws, "r")
    annotations = run_annotations(ws, run)
    # Plotly inlined; no tag loads a script, style, image or font from elsewhere (the
    # plotly bundle itself holds map-tile addresses as strings, used by map plots only).
    assert "Plotly.newPlot" in text and len(text) > 3_000_000
    tags = re.findall(r"<(?:script|link|img|iframe)\b[^>]*>", text)
    assert tags and not [t for t in tags if re.search(r"(src|href)\s*=", t)]
    assert "@import" not in text and "url(http" not in text
    for record in annotations.clusters:
        assert html.escape(record["label"]) in text
    hub = annotations.clusters[0]["hub_genes"][0]
    assert f"{hub['gene']} ({hub['coexpression_degree']})" in text
    assert "Top enriched terms per cluster" in text and "planted_modules" in text
    assert "has not been evaluated yet" in text
    out = tmp_path / "r.html"
    done = subprocess.run(
        [sys.executable, "-m", "musegnn_core", "report", "-w", str(ws.root), "--run", "r",
         "-o", str(out)],
        capture_output=True, text=True, cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert out.read_text().startswith("<!DOCTYPE html>") and "wrote" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "musegnn_core", "report", "-w", str(ws.root), "--run", "nope",
         "-o", str(tmp_path / "x.html")],
        capture_output=True, text=True, cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.startswith("error: No run named 'nope'")
    assert not (tmp_path / "x.html").exists()

"""The six benchmark metrics: hand computations on tiny examples, extremes, vectorisation."""

from __future__ import annotations

import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score, roc_auc_score

from musegnn_core.analysis import metrics
from musegnn_core.analysis.clusters import cluster_embedding
from musegnn_core.analysis.metrics import (
    RULE_ALL,
    RULE_HALF,
    RULE_NONE,
    asw_batch,
    auc_edges,
    binary_auc,
    common_gene_ratio,
    common_genes,
    evaluate_embedding,
    graph_connectivity,
    ilisi,
    minmax_scaled_means,
    neighbours_overlap,
)
from musegnn_core.errors import ValidationError
from tests.factories import FakeGraph


def make_graph(name: str, genes: list[str], edges: list[tuple[int, int]], n_cells: int = 5):
    n = len(genes)
    A = np.eye(n, dtype=np.uint8)
    for a, b in edges:
        A[a, b] = A[b, a] = 1
    features = np.zeros((n, n_cells), dtype=np.float32)
    return FakeGraph(name, list(genes), sp.csr_matrix(A), features)


def make_embedding(X, genes, datasets) -> ad.AnnData:
    obs = pd.DataFrame(
        {"gene": list(genes), "dataset": list(datasets)},
        index=[f"{d}:{g}:{i}" for i, (g, d) in enumerate(zip(genes, datasets, strict=True))],
    )
    return ad.AnnData(X=np.asarray(X, dtype=np.float32), obs=obs)


# ------------------------------------------------------------------ AUC core
def test_binary_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.random(500) < 0.3
    score = np.round(rng.random(500), 1)  # many ties
    assert binary_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    weight = rng.integers(1, 4, 500).astype(float)
    assert binary_auc(y, score, weight) == pytest.approx(
        roc_auc_score(y, score, sample_weight=weight), abs=1e-12
    )
    # many distinct weights: the joint ranking instead of counting per weight class
    weight = rng.random(500) + 0.1
    assert binary_auc(y, score, weight) == pytest.approx(
        roc_auc_score(y, score, sample_weight=weight), abs=1e-12
    )
    assert binary_auc([1, 0, 1, 0], [0.9, 0.1, 0.5, 0.5]) == pytest.approx(0.875)
    assert binary_auc([1, 0, 1, 0], [0.9, 0.1, 0.5, 0.5], [1, 2, 0, 1]) == pytest.approx(1.0)
    assert math.isnan(binary_auc(np.ones(4), np.arange(4)))
    assert math.isnan(binary_auc([], []))


# ----------------------------------------------------------------------- ASW
def test_asw_hand_example_and_skipped_clusters():
    X = np.array([[0.0], [1.0], [10.0], [11.0], [50.0], [51.0], [100.0], [101.0]])
    batch = ["a", "a", "b", "b", "a", "a", "a", "b"]
    labels = ["c0", "c0", "c0", "c0", "c1", "c1", "c2", "c2"]
    # c0: silhouettes 9.5/10.5, 8.5/9.5, 8.5/9.5, 9.5/10.5; c1 has one batch and c2 one row
    # per batch: both skipped, as in scib.
    expected = (1 / 10.5 + 1 / 9.5) / 2
    assert asw_batch(X, batch, labels) == pytest.approx(expected, rel=1e-12)
    assert math.isnan(asw_batch(X[4:6], batch[4:6], labels[4:6]))


def test_asw_extremes():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 8))
    batch = np.repeat(["a", "b"], 200)
    labels = np.zeros(400, dtype=int)
    assert asw_batch(X, batch, labels) > 0.95  # same distribution: perfectly mixed
    X[200:] += 100.0  # two far-apart blobs in one cluster: perfectly separated
    assert asw_batch(X, batch, labels) < 0.05


# ----------------------------------------------------------------------- AUC
def test_auc_edges_hand_example_with_alignment():
    graph = make_graph("d1", ["G0", "G1", "G2"], [(0, 1)])
    vectors = {
        "G0": [1.0, 0.0, 0.0],
        "G1": [0.6, -0.8, 0.0],  # cos(G0, G1) = 0.6
        "G2": [0.9, math.sqrt(1 - 0.81), 0.0],  # cos(G0, G2) = 0.9, cos(G1, G2) ~ 0.19
    }
    genes = ["G2", "EXTRA", "G0", "G1"]  # shuffled rows and a gene the graph lacks
    emb = make_embedding(
        [vectors.get(g, [0.0, 0.0, 1.0]) for g in genes] + [[1, 1, 1]],
        [*genes, "G0"],
        ["d1"] * 4 + ["other"],
    )
    graphs = {"d1": graph, "missing": make_graph("missing", ["G0", "G1"], [])}
    # positives: diagonal (score 1) x3 and G0-G1 (0.6) x2; negatives: G0-G2 (0.9) x2 and
    # G1-G2 (0.19) x2. Wins: 3 x 4 + 2 x 2 = 16 of 5 x 4 pairs.
    assert auc_edges(emb, graphs) == pytest.approx(16 / 20)
    # without the diagonal: 2 x 2 wins of 2 x 4 pairs
    assert auc_edges(emb, graphs, include_diagonal=False) == pytest.approx(0.5)


def test_auc_edges_extremes():
    rng = np.random.default_rng(2)
    n, k = 120, 4
    community = np.arange(n) % k
    A = (community[:, None] == community[None, :]).astype(np.uint8)
    genes = [f"G{i}" for i in range(n)]
    graph = FakeGraph("d", genes, sp.csr_matrix(A), np.zeros((n, 3), np.float32))
    aligned = np.eye(k)[community] * 3.0
    assert auc_edges(make_embedding(aligned, genes, ["d"] * n), {"d": graph}) == 1.0
    random = rng.normal(size=(n, 32))
    assert auc_edges(make_embedding(random, genes, ["d"] * n), {"d": graph}) == pytest.approx(
        0.5, abs=0.06
    )


# --------------------------------------------------------------------- iLISI
def test_ilisi_hand_example_equidistant_points():
    # one-hot points are all sqrt(2) apart, so every neighbour weighs the same whatever the
    # perplexity calibration does: point 0 sees batches (a, b, b) with weights 1/3 each,
    # Simpson = (1/3)^2 + (2/3)^2 = 5/9, iLISI = 9/5.
    X = np.eye(4)
    batch = ["a", "a", "b", "b"]
    assert ilisi(X, batch, k0=3, scale=False) == pytest.approx(9 / 5)
    assert ilisi(X, batch, k0=3) == pytest.approx((9 / 5 - 1) / (2 - 1))
    # six points, three per batch: Simpson = (2/5)^2 + (3/5)^2 = 13/25
    assert ilisi(np.eye(6), list("aaabbb"), scale=False) == pytest.approx(25 / 13)
    assert math.isnan(ilisi(np.eye(3), ["a", "a", "a"]))


def _simpson_loop(D, labels, n_batches, perplexity, tol=1e-5):
    """Row-by-row transcription of harmony/scib compute_simpson_index."""
    out = np.zeros(D.shape[0])
    for i in range(D.shape[0]):
        d = D[i] - D[i].min()

        def hbeta(beta, d=d):
            P = np.exp(-d * beta)
            s = P.sum()
            return np.log(s) + beta * np.sum(d * P) / s, P / s

        beta, bmin, bmax = 1.0, -np.inf, np.inf
        H, P = hbeta(beta)
        diff, tries = H - np.log(perplexity), 0
        while abs(diff) > tol and tries < 50:
            if diff > 0:
                bmin = beta
                beta = beta * 2 if bmax == np.inf else (beta + bmax) / 2
            else:
                bmax = beta
                beta = beta / 2 if bmin == -np.inf else (beta + bmin) / 2
            H, P = hbeta(beta)
            diff, tries = H - np.log(perplexity), tries + 1
        sums = np.bincount(labels[i], weights=P, minlength=n_batches)
        out[i] = np.sum(sums**2)
    return out


def test_simpson_calibration_matches_the_reference_loop():
    rng = np.random.default_rng(3)
    D = np.sort(rng.gamma(2.0, 2.0, size=(40, 30)), axis=1)
    labels = rng.integers(0, 3, size=(40, 30))
    fast = metrics._simpson_index(D, labels, 3, perplexity=10)
    np.testing.assert_allclose(fast, _simpson_loop(D, labels, 3, 10), rtol=1e-9)


def test_ilisi_extremes():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(600, 8))
    batch = np.repeat(["a", "b", "c"], 200)
    assert ilisi(X, batch) > 0.8  # same distribution: perfectly mixed (sampling noise < 1)
    X[200:400] += 100.0
    X[400:] -= 100.0
    assert ilisi(X, batch) == pytest.approx(0.0, abs=1e-9)  # perfectly separated


# ------------------------------------------------------- graph connectivity
def test_graph_connectivity_hand_example():
    A = np.zeros((6, 6))
    for a, b in [(0, 1), (3, 4), (4, 5), (2, 3)]:  # 2-3 crosses clusters: ignored
        A[a, b] = A[b, a] = 1
    labels = ["a", "a", "a", "b", "b", "b"]
    # cluster a: components {0, 1}, {2} -> 2/3; cluster b: {3, 4, 5} -> 1
    assert graph_connectivity(sp.csr_matrix(A), labels) == pytest.approx((2 / 3 + 1) / 2)
    assert graph_connectivity(sp.csr_matrix(np.zeros((4, 4))), list("aabb")) == 0.5
    with pytest.raises(ValidationError):
        graph_connectivity(sp.csr_matrix(A), ["a"] * 5)


# ------------------------------------------------------- common gene ratio
def test_common_gene_ratio_hand_example():
    genes = ["G1", "G1", "G2", "G1", "G2", "G3"]
    labels = [0, 0, 0, 1, 1, 1]
    # cluster 0: (3/6)(1 - 2/3); cluster 1: (3/6)(1 - 3/3)
    assert common_gene_ratio(genes, labels) == pytest.approx(0.5 * (1 / 3))
    assert common_gene_ratio(["G"] * 4, [0] * 4) == pytest.approx(0.75)


# ------------------------------------------------------- neighbours overlap
def _two_dataset_example():
    g1 = make_graph("d1", ["A", "B", "C"], [(0, 1)])  # N(A)={A,B} N(B)={A,B} N(C)={C}
    g2 = make_graph("d2", ["A", "B", "D"], [(0, 2)])  # N(A)={A,D} N(B)={B} N(D)={A,D}
    emb = make_embedding(np.zeros((6, 2)), ["A", "B", "C", "A", "B", "D"], ["d1"] * 3 + ["d2"] * 3)
    labels = ["x", "y", "y", "x", "y", "x"]
    return emb, {"d1": g1, "d2": g2}, labels


def test_neighbours_overlap_hand_example():
    emb, graphs, labels = _two_dataset_example()
    # x = {d1:A, d2:A, d2:D}: J({A,B},{A,D}) = 1/3 for both cross pairs -> 1/3
    # y = {d1:B, d1:C, d2:B}: J({A,B},{B}) = 1/2, J({C},{B}) = 0 -> 1/4
    assert neighbours_overlap(emb, graphs, labels) == pytest.approx(0.5 / 3 + 0.5 / 4)


def _brute_force_no(emb, graphs, labels):
    genes = emb.obs["gene"].to_numpy()
    datasets = emb.obs["dataset"].to_numpy()
    sets = []
    for g, d in zip(genes, datasets, strict=True):
        graph = graphs.get(d)
        if graph is None or g not in graph.genes:
            sets.append(set())
            continue
        row = graph.adjacency[graph.genes.index(g)].toarray().ravel()
        sets.append({graph.genes[j] for j in np.flatnonzero(row)})
    labels = np.asarray(labels)
    total = 0.0
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        values = []
        for a in rows:
            for b in rows:
                if datasets[a] == datasets[b]:
                    continue
                union = len(sets[a] | sets[b])
                values.append(len(sets[a] & sets[b]) / union if union else 0.0)
        if values:
            total += len(rows) / len(labels) * np.mean(values)
    return total


@pytest.mark.parametrize("chunk", [2048, 3])
def test_neighbours_overlap_matches_brute_force(monkeypatch, chunk):
    monkeypatch.setattr(metrics, "_NO_CHUNK", chunk)
    rng = np.random.default_rng(5)
    vocabulary = [f"G{i}" for i in range(40)]
    graphs, genes, datasets = {}, [], []
    for d in range(4):
        names = list(rng.choice(vocabulary, 15, replace=False))
        edges = [tuple(rng.choice(15, 2, replace=False)) for _ in range(25)]
        graphs[f"d{d}"] = make_graph(f"d{d}", names, edges)
        genes += names
        datasets += [f"d{d}"] * 15
    genes += ["NOT_A_NODE", "ALSO_NOT"]  # empty neighbour sets: Jaccard 0, no division error
    datasets += ["d0", "d1"]
    genes += ["G0"]
    datasets += ["no_graph"]
    emb = make_embedding(np.zeros((len(genes), 2)), genes, datasets)
    labels = rng.integers(0, 4, len(genes))
    labels[-3:-1] = 9  # the two empty rows share a cluster
    expected = _brute_force_no(emb, graphs, labels)
    assert expected > 0
    assert neighbours_overlap(emb, graphs, labels) == pytest.approx(expected, rel=1e-12)


def test_neighbours_overlap_single_dataset_clusters_give_zero():
    emb, graphs, _ = _two_dataset_example()
    assert neighbours_overlap(emb, graphs, ["d1"] * 3 + ["d2"] * 3) == 0.0


# ------------------------------------------------------------ common genes
def test_common_genes_all_half_and_none():
    emb = make_embedding(np.zeros((5, 2)), ["A", "B", "A", "A", "C"], list("xxyzz"))
    assert common_genes(emb) == (["A"], 1.0, RULE_ALL)
    # four datasets, no gene in all: genes in at least two of them
    emb = make_embedding(np.zeros((6, 2)), list("ABACBD"), list("ppqqrs"))
    genes, fraction, note = common_genes(emb)
    assert (genes, fraction, note) == (["A", "B"], 0.5, RULE_HALF)
    assert "no gene is in all" in note
    emb = make_embedding(np.zeros((4, 2)), list("ABCD"), list("pqrs"))
    assert common_genes(emb) == ([], 0.5, RULE_NONE)


# ------------------------------------------------------------- clustering
def test_cluster_embedding_recovers_blobs_and_is_seeded():
    rng = np.random.default_rng(6)
    centres = rng.normal(size=(3, 8)) * 30
    truth = np.repeat(np.arange(3), 60)
    X = centres[truth] + rng.normal(size=(180, 8))
    emb = make_embedding(X, [f"G{i}" for i in range(180)], ["d"] * 180)
    out = cluster_embedding(emb, resolution=0.2, seed=0)
    assert out is emb and "connectivities" in emb.obsp
    assert adjusted_rand_score(truth, emb.obs["leiden"]) == 1.0
    again = cluster_embedding(emb.copy(), resolution=0.2, seed=0)
    assert (again.obs["leiden"] == emb.obs["leiden"]).all()
    with pytest.raises(ValidationError):
        cluster_embedding(make_embedding(np.zeros((2, 2)), ["A", "B"], ["d", "d"]))


# ------------------------------------------------------------- evaluation
def _synthetic_run(n_datasets=4, n_core=40, n_own=40, seed=7):
    """Graphs sharing ``n_core`` genes (more rows per dataset than iLISI's perplexity 30)."""
    rng = np.random.default_rng(seed)
    vocabulary = [f"G{i}" for i in range(200)]
    graphs = {}
    for d in range(n_datasets):
        names = vocabulary[:n_core] + list(rng.choice(vocabulary[n_core:], n_own, replace=False))
        n = len(names)
        edges = [tuple(rng.choice(n, 2, replace=False)) for _ in range(200)]
        graphs[f"d{d}"] = make_graph(f"d{d}", names, edges)
    genes = [g for graph in graphs.values() for g in graph.genes]
    datasets = [name for name, graph in graphs.items() for _ in graph.genes]
    return graphs, genes, datasets


def test_evaluate_embedding_mixed_vs_separated():
    graphs, genes, datasets = _synthetic_run()
    rng = np.random.default_rng(8)
    mixed = make_embedding(rng.normal(size=(len(genes), 32)), genes, datasets)
    before = mixed.obs.copy()
    result = evaluate_embedding(mixed, graphs)
    assert set(metrics.METRICS) <= set(result)
    assert result["n_rows"] == len(genes)
    assert result["common_gene_rule"] == RULE_ALL and result["n_common_genes"] >= 1
    assert result["asw"] > 0.8 and result["ilisi"] > 0.7
    assert result["mean_of_six"] == pytest.approx(np.mean([result[m] for m in metrics.METRICS]))
    for m in metrics.METRICS:
        assert 0.0 <= result[m] <= 1.0
    assert "leiden" not in mixed.obs and mixed.obs.equals(before)  # input left alone

    offsets = {name: i * 100.0 for i, name in enumerate(graphs)}
    separated = mixed.copy()
    separated.X = separated.X + np.array([offsets[d] for d in datasets], dtype=np.float32)[:, None]
    result = evaluate_embedding(separated, graphs)
    assert result["ilisi"] == pytest.approx(0.0, abs=1e-6)
    assert result["cgr"] == 0.0 and result["no"] == 0.0
    assert math.isnan(result["asw"])  # every cluster holds one dataset: scib gives NaN
    assert result["undefined_metrics"] == ["asw"] and math.isnan(result["mean_of_six"])
    assert math.isfinite(result["mean_of_defined"])


def test_evaluate_embedding_falls_back_to_half_and_says_so():
    graphs, genes, datasets = _synthetic_run()
    in_all = set.intersection(*(set(g.genes) for g in graphs.values()))
    assert in_all  # G0 at least
    keep = [not (g in in_all and d == "d3") for g, d in zip(genes, datasets, strict=True)]
    rng = np.random.default_rng(9)
    emb = make_embedding(
        rng.normal(size=(sum(keep), 8)),
        [g for g, k in zip(genes, keep, strict=True) if k],
        [d for d, k in zip(datasets, keep, strict=True) if k],
    )
    result = evaluate_embedding(emb, graphs)
    assert result["common_gene_rule"] == RULE_HALF
    assert result["common_gene_fraction"] == 0.5
    counts = emb.obs.groupby("gene", observed=True)["dataset"].nunique()
    assert result["n_common_genes"] == int((counts >= 2).sum())
    assert result["n_common_rows"] == int(counts[counts >= 2].sum())
    for m in metrics.METRICS:
        assert 0.0 <= result[m] <= 1.0


def test_evaluate_embedding_rejects_bad_input():
    graphs, genes, datasets = _synthetic_run()
    X = np.zeros((len(genes), 4))
    X[0, 0] = np.nan
    with pytest.raises(ValidationError):
        evaluate_embedding(make_embedding(X, genes, datasets), graphs)
    emb = make_embedding(np.zeros((len(genes), 4)), genes, datasets)
    del emb.obs["gene"]
    with pytest.raises(ValidationError, match="gene"):
        evaluate_embedding(emb, graphs)


def test_minmax_scaled_means():
    results = {
        "a": dict.fromkeys(metrics.METRICS, 1.0),
        "b": dict.fromkeys(metrics.METRICS, 0.0),
        "c": dict.fromkeys(metrics.METRICS, 0.25),
    }
    results["c"]["asw"] = 0.75
    results["a"]["no"] = results["b"]["no"] = results["c"]["no"] = 0.1  # a tie: left out
    scaled = minmax_scaled_means(results)
    assert scaled["a"] == 1.0 and scaled["b"] == 0.0
    assert scaled["c"] == pytest.approx((0.75 + 4 * 0.25) / 5)


def test_row_helpers_one_definition():
    """The analysis modules share arrays.unit_rows; clustering lives in clusters.py, and the
    old import path musegnn_core.analysis.metrics.cluster_embedding still works."""
    from musegnn_core.analysis import clusters, metrics
    from musegnn_core.analysis.arrays import unit_rows

    assert metrics.cluster_embedding is clusters.cluster_embedding
    X = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(unit_rows(X), [[0.6, 0.8], [0.0, 0.0]])
    assert unit_rows(sp.csr_matrix(X), dtype=np.float32).dtype == np.float32

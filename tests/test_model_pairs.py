"""Pair statistics against brute force on small random graphs."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from musegnn_core.errors import ValidationError
from musegnn_core.model.pairs import (
    PairStats,
    compute_all_pair_stats,
    compute_pair_stats,
    draw_neighbours,
    partner_overlap,
    resample_neighbours,
)
from musegnn_core.train import draw_partner


def _graph(genes, edges, n=None, self_loops=True):
    n = len(genes) if n is None else n
    a = np.zeros((n, n), dtype=np.uint8)
    for u, v in edges:
        a[u, v] = a[v, u] = 1
    if self_loops:
        np.fill_diagonal(a, 1)
    return SimpleNamespace(genes=list(genes), adjacency=sp.csr_matrix(a))


def _random_graph(rng, pool, n, density, self_loops=True):
    genes = [f"G{i}" for i in rng.choice(pool, n, replace=False)]
    upper = np.triu(rng.random((n, n)) < density, 1)
    a = upper | upper.T
    if self_loops:
        np.fill_diagonal(a, True)
    return SimpleNamespace(genes=genes, adjacency=sp.csr_matrix(a.astype(np.uint8)))


def _neighbour_names(graph) -> dict[str, set[str]]:
    a = graph.adjacency.toarray()
    return {g: {graph.genes[j] for j in np.flatnonzero(a[i])} for i, g in enumerate(graph.genes)}


def _check_against_brute_force(t, s, stats: PairStats):
    nt, ns = _neighbour_names(t), _neighbour_names(s)
    common = [g for g in t.genes if g in set(s.genes)]
    assert [t.genes[i] for i in stats.common_t.tolist()] == common
    assert [s.genes[i] for i in stats.common_s.tolist()] == common
    expected = [len(nt[g] & ns[g]) / (len(nt[g] | ns[g]) + 1e-8) for g in common]
    np.testing.assert_allclose(stats.weights.numpy(), expected, rtol=1e-6, atol=1e-7)
    assert [t.genes[i] for i in stats.only_t.tolist()] == [g for g in t.genes if g not in s.genes]
    assert [s.genes[i] for i in stats.only_s.tolist()] == [g for g in s.genes if g not in t.genes]
    for graph, names, only, nb in (
        (t, nt, stats.only_t, stats.neighbour_only_t),
        (s, ns, stats.only_s, stats.neighbour_only_s),
    ):
        assert nb.shape == only.shape
        for g_idx, n_idx in zip(only.tolist(), nb.tolist(), strict=True):
            gene, drawn = graph.genes[g_idx], graph.genes[n_idx]
            assert drawn in names[gene] if names[gene] else drawn == gene
    for field in ("common_t", "common_s", "only_t", "only_s", "neighbour_only_t"):
        assert getattr(stats, field).dtype == torch.long
    assert stats.weights.dtype == torch.float32


def test_jaccard_weights_match_a_hand_computation():
    # t: A-B, B-C, with self-loops; s: A-B, A-D, with self-loops
    t = _graph(["A", "B", "C"], [(0, 1), (1, 2)])
    s = _graph(["D", "B", "A"], [(2, 1), (2, 0)])
    stats = compute_pair_stats(t.genes, t.adjacency, s.genes, s.adjacency, np.random.default_rng(0))
    assert stats.common_t.tolist() == [0, 1] and stats.common_s.tolist() == [2, 1]
    # A: N_t = {A, B}, N_s = {A, B, D} -> 2/3. B: N_t = {A, B, C}, N_s = {A, B} -> 2/3.
    np.testing.assert_allclose(stats.weights.numpy(), [2 / 3, 2 / 3], rtol=1e-6)
    assert stats.only_t.tolist() == [2] and stats.only_s.tolist() == [0]
    assert stats.neighbour_only_t.item() in (1, 2)  # C's neighbours: B or itself
    assert stats.neighbour_only_s.item() in (0, 2)  # D's neighbours: itself or A


def test_partner_overlap_sums_the_jaccard_weights_of_each_pair():
    t = _graph(["A", "B", "C"], [(0, 1), (1, 2)])
    s = _graph(["D", "B", "A"], [(2, 1), (2, 0)])
    u = _graph(["X", "Y"], [(0, 1)])  # shares no gene with t or s
    overlap = partner_overlap(compute_all_pair_stats([t, s, u], seed=0), 3)
    # t and s: A and B each 2/3 (the hand computation above).
    np.testing.assert_allclose(overlap, [[0, 4 / 3, 0], [4 / 3, 0, 0], [0, 0, 0]], rtol=1e-6)


def test_partners_drawn_by_overlap():
    overlap = np.array([[0, 1, 3, 0], [1, 0, 0, 0], [3, 0, 0, 0], [0, 0, 0, 0.0]])
    rng = np.random.default_rng(0)
    draws = np.array([draw_partner(rng, 0, 4, overlap) for _ in range(4000)])
    assert set(draws.tolist()) == {1, 2}  # never itself, never a dataset it shares nothing with
    assert abs((draws == 2).mean() - 0.75) < 0.03
    assert {draw_partner(rng, 1, 4, overlap) for _ in range(50)} == {0}
    # A dataset overlapping no other falls back to the uniform draw.
    assert {draw_partner(rng, 3, 4, overlap) for _ in range(200)} == {0, 1, 2}
    assert {draw_partner(rng, 3, 4) for _ in range(200)} == {0, 1, 2}


@pytest.mark.parametrize("seed", range(6))
def test_pair_stats_match_brute_force_on_random_graphs(seed):
    rng = np.random.default_rng(seed)
    t = _random_graph(rng, 30, int(rng.integers(5, 20)), rng.uniform(0.05, 0.6), seed % 2 == 0)
    s = _random_graph(rng, 30, int(rng.integers(5, 20)), rng.uniform(0.05, 0.6), seed % 3 == 0)
    stats = compute_pair_stats(t.genes, t.adjacency, s.genes, s.adjacency, rng)
    _check_against_brute_force(t, s, stats)


def test_isolated_gene_draws_itself_and_disjoint_graphs_have_no_common_genes():
    t = _graph(["A", "B", "C"], [(0, 1)], self_loops=False)  # C isolated, no self-loop
    s = _graph(["X", "Y"], [(0, 1)])
    stats = compute_pair_stats(t.genes, t.adjacency, s.genes, s.adjacency, np.random.default_rng(1))
    assert stats.n_common == 0 and stats.weights.shape == (0,)
    assert stats.common_t.dtype == torch.long
    assert stats.only_t.tolist() == [0, 1, 2]
    nb = stats.neighbour_only_t.tolist()
    assert nb[0] == 1 and nb[1] == 0 and nb[2] == 2


def test_neighbour_draws_are_uniform_and_exclude_self_on_request():
    g = _graph(list("ABCDE"), [(0, 1), (0, 2), (0, 3)])  # A: self, B, C, D
    a = sp.csr_matrix(g.adjacency, dtype=np.float32)
    nodes = np.zeros(8000, dtype=np.int64)
    counts = np.bincount(draw_neighbours(a, nodes, np.random.default_rng(0)), minlength=5)
    assert counts[4] == 0 and all(1800 < c < 2200 for c in counts[:4])
    counts = np.bincount(draw_neighbours(a, nodes, np.random.default_rng(0), True), minlength=5)
    assert counts[0] == 0 and all(2400 < c < 2950 for c in counts[1:4])
    # E has only its self-loop: excluding self leaves itself as the fallback
    assert draw_neighbours(a, np.array([4]), np.random.default_rng(0), True).tolist() == [4]


def test_exclude_self_vectorised_on_random_graph():
    rng = np.random.default_rng(3)
    g = _random_graph(rng, 80, 40, 0.2)
    a = sp.csr_matrix(g.adjacency, dtype=np.float32)
    a.sort_indices()
    nodes = np.repeat(np.arange(40), 20)
    drawn = draw_neighbours(a, nodes, rng, exclude_self=True)
    dense = a.toarray()
    for u, v in zip(nodes, drawn, strict=True):
        assert (v != u and dense[u, v]) or dense[u].sum() == 1


def test_all_pairs_are_consistent_with_single_pairs_and_seeded():
    rng = np.random.default_rng(7)
    graphs = [_random_graph(rng, 25, n, d) for n, d in ((10, 0.3), (14, 0.1), (8, 0.5))]
    stats = compute_all_pair_stats(graphs, seed=11)
    assert sorted(stats) == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    for (i, j), st in stats.items():
        t, s = graphs[i], graphs[j]
        _check_against_brute_force(t, s, st)
        single = compute_pair_stats(
            t.genes, t.adjacency, s.genes, s.adjacency, np.random.default_rng([11, i, j])
        )
        for name in PairStats.__dataclass_fields__:
            assert torch.equal(getattr(single, name), getattr(st, name)), name
    again = compute_all_pair_stats(graphs, seed=11)
    other = compute_all_pair_stats(graphs, seed=12)
    assert all(torch.equal(again[k].neighbour_only_t, stats[k].neighbour_only_t) for k in stats)
    assert any(not torch.equal(other[k].neighbour_only_t, stats[k].neighbour_only_t) for k in stats)


def test_to_and_resample_neighbours():
    rng = np.random.default_rng(5)
    t, s = _random_graph(rng, 40, 20, 0.4), _random_graph(rng, 40, 15, 0.4)
    stats = compute_pair_stats(t.genes, t.adjacency, s.genes, s.adjacency, rng)
    moved = stats.to("cpu")
    assert moved is not stats and torch.equal(moved.weights, stats.weights)
    fresh = resample_neighbours(stats, t.adjacency, s.adjacency, np.random.default_rng(9))
    assert torch.equal(fresh.only_t, stats.only_t) and torch.equal(fresh.weights, stats.weights)
    _check_against_brute_force(t, s, fresh)
    assert not torch.equal(fresh.neighbour_only_t, stats.neighbour_only_t)


def test_bad_inputs_are_rejected():
    g = _graph(["A", "B"], [(0, 1)])
    with pytest.raises(ValidationError):
        compute_pair_stats(["A", "B", "C"], g.adjacency, g.genes, g.adjacency, None)
    with pytest.raises(ValidationError):
        compute_pair_stats(["A", "A"], g.adjacency, g.genes, g.adjacency, None)


def test_all_pairs_of_eight_realistic_graphs(capsys):
    """56 ordered pairs of eight 1000-gene graphs at 5-60% density (reference: 4.4 s)."""
    rng = np.random.default_rng(0)
    densities = (0.03, 0.11, 0.15, 0.16, 0.24, 0.32, 0.45, 0.59)
    graphs = [_random_graph(rng, 1800, 1000, d) for d in densities]
    start = time.perf_counter()
    stats = compute_all_pair_stats(graphs, seed=0)
    seconds = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n[timing] pair statistics, 56 pairs of eight 1000-gene graphs: {seconds:.2f} s")
    assert len(stats) == 56
    t, s = graphs[2], graphs[6]
    st = stats[(2, 6)]
    # spot-check three common genes against sets
    nt, ns = _neighbour_names(t), _neighbour_names(s)
    for k in (0, st.n_common // 2, st.n_common - 1):
        g = t.genes[st.common_t[k]]
        assert st.weights[k].item() == pytest.approx(len(nt[g] & ns[g]) / len(nt[g] | ns[g]))

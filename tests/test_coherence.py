"""Gene-pair measures: within / unified coherence, the co-expression baseline, alignment."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from musegnn_core.analysis import coherence as C
from musegnn_core.analysis.metrics import binary_auc
from musegnn_core.analysis.reading import metric_reading


class _Graph:
    def __init__(self, genes, features, adjacency):
        self.genes = list(genes)
        self.features = np.asarray(features, dtype=np.float32)
        self.adjacency = sp.csr_matrix(adjacency)


def _embedding(rows):
    """rows: list of (dataset, gene, vector)."""
    obs = pd.DataFrame(
        {"dataset": [r[0] for r in rows], "gene": [r[1] for r in rows]},
        index=[f"{r[0]}:{r[1]}" for r in rows],
    )
    return ad.AnnData(X=np.array([r[2] for r in rows], dtype=np.float32), obs=obs)


def test_coexpression_baseline_is_the_mean_pearson_over_datasets_holding_both():
    rng = np.random.default_rng(0)
    a, b, c = rng.normal(size=(3, 12))
    g1 = _Graph(["A", "B", "C"], [a, a + 0.5 * b, c], np.eye(3))
    d, e = rng.normal(size=(2, 7))
    g2 = _Graph(["A", "B"], [d, -d + 0.3 * e], np.eye(2))
    blocks = C.coexpression_blocks({"one": g1, "two": g2})
    pairs = C.GenePairs(
        genes=np.array(["A", "B", "C"]),
        first=np.array([0, 0]),
        second=np.array([1, 2]),
        label=np.array([True, False]),
        n_shared=np.array([2, 1]),
    )
    within = C.within_similarity(blocks, pairs)
    r1 = np.corrcoef(a, a + 0.5 * b)[0, 1]
    r2 = np.corrcoef(d, -d + 0.3 * e)[0, 1]
    assert within[0] == pytest.approx((r1 + r2) / 2, abs=1e-5)
    assert within[1] == pytest.approx(np.corrcoef(a, c)[0, 1], abs=1e-5)
    # No shared space: unified is within, 0 where no dataset holds the pair.
    lonely = C.GenePairs(pairs.genes, np.array([2]), np.array([0]), np.array([True]), np.zeros(1))
    g3 = _Graph(["C"], [c], np.eye(1))
    only_c = C.coexpression_blocks({"two": g2, "three": g3})
    assert C.unified_similarity(only_c, lonely)[0] == 0.0


def _profile(features: np.ndarray) -> np.ndarray:
    """Each gene's Pearson correlation with every gene, its own entry 0 (by hand)."""
    R = np.corrcoef(features)
    np.fill_diagonal(R, 0.0)
    return R


def test_profile_baseline_correlates_coexpression_profiles_within_and_across_datasets():
    rng = np.random.default_rng(1)
    f1, f2 = rng.normal(size=(4, 9)), rng.normal(size=(4, 7))
    g1 = _Graph(["A", "B", "C", "D"], f1, np.eye(4))
    g2 = _Graph(["B", "C", "D", "E"], f2, np.eye(4))
    blocks = C.profile_blocks({"one": g1, "two": g2})
    assert not blocks.shared_space
    R1, R2 = _profile(f1), _profile(f2)
    genes = np.array(["A", "B", "C", "D", "E"])
    # (B, C): held by both datasets; (A, E): A only in one, E only in two.
    pairs = C.GenePairs(
        genes, np.array([1, 0]), np.array([2, 4]), np.array([True, False]), np.array([2, 0])
    )

    def r(u, v):
        return np.corrcoef(u, v)[0, 1]

    within = C.within_similarity(blocks, pairs)
    bc_one, bc_two = r(R1[1], R1[2]), r(R2[0], R2[1])  # B, C are rows 1, 2 of one; 0, 1 of two
    assert within[0] == pytest.approx((bc_one + bc_two) / 2, abs=1e-5)
    assert np.isnan(within[1])  # no dataset holds A and E
    # Across datasets the profiles are compared over the genes both hold (B, C, D).
    shared_one, shared_two = [1, 2, 3], [0, 1, 2]
    bc_across = r(R1[1, shared_one], R2[1, shared_two])  # B in one, C in two
    cb_across = r(R2[0, shared_two], R1[2, shared_one])  # B in two, C in one
    ae_across = r(R1[0, shared_one], R2[3, shared_two])
    unified = C.unified_similarity(blocks, pairs)
    assert unified[0] == pytest.approx((bc_one + bc_two + bc_across + cb_across) / 4, abs=1e-5)
    assert unified[1] == pytest.approx(ae_across, abs=1e-5)


def test_profile_similarity_of_many_pairs_sharing_genes_in_chunks():
    """Genes recur across pairs and pairs span chunks: every pair still gets the mean over
    the dataset pairs holding its genes of the profiles' Pearson r over their shared genes."""
    rng = np.random.default_rng(2)
    names = {"one": list("ABCDEF"), "two": list("BCDEGH"), "three": list("ACEGHIJ")}
    graphs = {
        name: _Graph(genes, rng.normal(size=(len(genes), 11)), np.eye(len(genes)))
        for name, genes in names.items()
    }
    blocks = C.profile_blocks(graphs)
    profiles = {name: _profile(g.features) for name, g in graphs.items()}
    genes = np.array(sorted(set().union(*names.values())))
    first, second = rng.integers(0, genes.size, size=(2, 60))
    pairs = C.GenePairs(genes, first, second, np.ones(60, bool), np.zeros(60, int))

    def expected(a: str, b: str) -> float:
        values = []
        for x, gx in names.items():
            for y, gy in names.items():
                if a not in gx or b not in gy:
                    continue
                shared = [g for g in gx if g in gy]
                if len(shared) < 3:
                    continue
                u = profiles[x][gx.index(a), [gx.index(g) for g in shared]]
                v = profiles[y][gy.index(b), [gy.index(g) for g in shared]]
                values.append(np.corrcoef(u, v)[0, 1])
        return float(np.mean(values)) if values else np.nan

    want = np.array([expected(genes[i], genes[j]) for i, j in zip(first, second, strict=True)])
    got = C.profile_similarity(blocks, pairs, chunk=7)
    assert np.isfinite(want).sum() > 40
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_within_and_unified_on_a_hand_embedding():
    emb = _embedding(
        [
            ("d1", "A", [1, 0]),
            ("d1", "B", [1, 0.1]),
            ("d1", "C", [0, 1]),
            ("d2", "A", [0, 1]),
            ("d2", "C", [0, 1]),
            ("d2", "D", [1, 0]),
        ]
    )
    blocks = C.embedding_blocks(emb)
    pairs = C.GenePairs(
        genes=np.array(["A", "B", "C", "D"]),
        first=np.array([0, 0, 1]),
        second=np.array([2, 3, 3]),
        label=np.array([True, False, False]),
        n_shared=np.array([2, 1, 0]),
    )
    within = C.within_similarity(blocks, pairs)
    assert within[0] == pytest.approx(0.5)  # cos 0 in d1, 1 in d2
    assert within[1] == pytest.approx(0.0)  # only d2 holds A and D
    assert np.isnan(within[2])  # no dataset holds B and D
    unified = C.unified_similarity(blocks, pairs)
    mean_a = np.array([1, 1]) / np.sqrt(2)
    mean_c = np.array([0, 1])
    assert unified[0] == pytest.approx(mean_a @ mean_c, abs=1e-6)
    assert unified[2] == pytest.approx(np.array([1, 0.1]) @ [1, 0] / np.hypot(1, 0.1), abs=1e-6)


def test_pairs_are_balanced_uniform_and_the_same_for_every_method():
    rng = np.random.default_rng(1)
    genes = [f"G{i}" for i in range(60)]
    sets = {"s1": genes[:20], "s2": genes[20:40], "s3": genes[45:]}
    rows = [("d1", g, rng.normal(size=4)) for g in genes[:45]]
    rows += [("d2", g, rng.normal(size=4)) for g in genes[30:]]
    blocks = C.embedding_blocks(_embedding(rows))
    within = C.sample_gene_pairs(blocks, sets, "within", per_class=50, seed=3)
    assert within.label.sum() == 50 and (~within.label).sum() == 50
    assert (within.n_shared >= 1).all()
    assert (within.first != within.second).all()
    set_of = {g: k for k, members in sets.items() for g in members}
    same = [
        set_of[within.genes[i]] == set_of[within.genes[j]]
        for i, j in zip(within.first, within.second, strict=True)
    ]
    assert np.array_equal(np.array(same), within.label)
    again = C.sample_gene_pairs(blocks, sets, "within", per_class=50, seed=3)
    assert np.array_equal(again.first, within.first)
    unified = C.sample_gene_pairs(blocks, sets, "unified", per_class=50, seed=3)
    assert (unified.n_shared == 0).any()  # pairs no dataset holds together are scored too


def test_planted_modules_score_high_and_random_scores_chance():
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(4, 8)) * 3
    genes = [f"G{i}" for i in range(80)]
    module = {g: i // 20 for i, g in enumerate(genes)}
    sets = {f"m{k}": [g for g in genes if module[g] == k] for k in range(4)}
    rows = [(d, g, centres[module[g]] + rng.normal(size=8)) for d in ("d1", "d2") for g in genes]
    scores = C.coherence_scores(C.embedding_blocks(_embedding(rows)), {"lib": sets}, seed=0)
    assert scores["coherence_within:lib"] > 0.95 and scores["coherence_unified:lib"] > 0.95
    noise = [(d, g, rng.normal(size=8)) for d, g, _ in rows]
    scores = C.coherence_scores(C.embedding_blocks(_embedding(noise)), {"lib": sets}, seed=0)
    assert abs(scores["coherence_within:lib"] - 0.5) < 0.05


def test_unified_by_datasets_holding_both_shows_what_integration_passes_on():
    """Genes G0-G59 only in d1, G60-G119 only in d2, G120-G159 in both: pairs across the two
    private halves are held together by no dataset (bin "0"). With the modules in one place
    in both datasets those pairs score high; with d2's modules placed anew, each dataset
    still knows its modules (bin "1" stays high), but nothing passes between them."""
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(8, 16)) * 3
    genes = [f"G{i}" for i in range(160)]
    module = {g: i % 8 for i, g in enumerate(genes)}
    sets = {f"m{k}": [g for g in genes if module[g] == k] for k in range(8)}
    held = {"d1": genes[:60] + genes[120:], "d2": genes[60:]}

    def scores(d2_centres: np.ndarray) -> dict:
        place = {"d1": centres, "d2": d2_centres}
        rows = [
            (d, g, place[d][module[g]] + rng.normal(size=16))
            for d, names in held.items()
            for g in names
        ]
        return C.coherence_scores(C.embedding_blocks(_embedding(rows)), {"lib": sets}, seed=0)

    aligned, apart = scores(centres), scores(rng.normal(size=(8, 16)) * 3)
    assert aligned["coherence_unified[0]:lib"] > 0.95
    assert abs(apart["coherence_unified[0]:lib"] - 0.5) < 0.15
    for one in (aligned, apart):
        assert one["coherence_unified[1]:lib"] > 0.95 and one["coherence_within[1]:lib"] > 0.95
        assert np.isnan(one["coherence_unified[5+]:lib"])  # two datasets: no such pairs
    assert "held together by no dataset" in metric_reading("coherence_unified[0]:lib")
    assert "by 3-4 dataset(s)" in metric_reading("coherence_unified[3-4]:lib")
    # The same split with every set weighing the same: each bin against its own negatives.
    assert aligned["coherence_unified_per_set[0]:lib"] > 0.95
    assert abs(apart["coherence_unified_per_set[0]:lib"] - 0.5) < 0.15
    for one in (aligned, apart):
        assert one["coherence_unified_per_set[1]:lib"] > 0.95
        assert one["coherence_within_per_set[1]:lib"] > 0.95
        assert np.isnan(one["coherence_unified_per_set[5+]:lib"])
        assert "coherence_within_per_set[0]:lib" not in one  # within: no such bin
    reading = metric_reading("coherence_unified_per_set[0]:lib")
    assert "every gene set weighing the same" in reading and "no dataset" in reading


def test_smallest_shared_set_on_a_hand_library():
    blocks = C.embedding_blocks(
        _embedding([("d1", g, [1.0, 0.0]) for g in ("A", "B", "C", "D", "E")])
    )
    # "big" counts its genes in the library, X and Y too, though no dataset holds them.
    sets = {"big": ["A", "B", "C", "X", "Y"], "small": ["A", "B"], "mid": ["B", "C", "D"]}
    universe = C.pair_universe(blocks, sets)
    index = {g: i for i, g in enumerate(universe.genes)}
    first = np.array([index[g] for g in ("A", "B", "A", "C", "A")])
    second = np.array([index[g] for g in ("B", "C", "C", "D", "D")])
    assert C.smallest_shared_set(universe, first, second).tolist() == [2, 3, 5, 3, 0]


def test_coherence_by_set_size_tells_specific_sets_from_broad_ones():
    """Pairs in one of eight small modules sit together; the broad set spans half of
    all genes and nothing in the embedding follows it. Each bin is scored against all
    pairs sharing no set, so the small sets score high and the broad one at chance."""
    rng = np.random.default_rng(5)
    genes = [f"G{i}" for i in range(200)]
    module = {g: i % 8 for i, g in enumerate(genes)}
    sets = {f"m{k}": [g for g in genes if module[g] == k][:20] for k in range(8)}
    sets["broad"] = genes[100:200] + [f"X{i}" for i in range(500)]  # 600 genes in the library
    centres = rng.normal(size=(8, 16)) * 3
    rows = [
        (d, g, (centres[module[g]] if g in sets[f"m{module[g]}"] else 0) + rng.normal(size=16))
        for d in ("d1", "d2")
        for g in genes
    ]
    scores = C.coherence_scores(C.embedding_blocks(_embedding(rows)), {"lib": sets}, seed=0)
    for scope in ("within", "unified"):
        assert scores[f"coherence_{scope}_by_set_size[1-100]:lib"] > 0.9
        assert np.isnan(scores[f"coherence_{scope}_by_set_size[101-500]:lib"])  # no such set
        assert abs(scores[f"coherence_{scope}_by_set_size[501+]:lib"] - 0.5) < 0.05
    assert "smallest shared set has 1-100 genes" in metric_reading(
        "coherence_within_by_set_size[1-100]:lib"
    )


def test_gene_matched_negatives_take_out_what_single_genes_carry():
    """Well-studied genes sit in more sets, so a similarity that only knows how "popular"
    each gene is (here: cosine along one shared axis) ranks sharing pairs high without
    knowing which genes belong together. Against gene-matched negatives it scores chance;
    planted modules keep their score."""
    rng = np.random.default_rng(8)
    genes = [f"G{i}" for i in range(300)]
    popularity = rng.uniform(size=300)
    sets = {
        f"s{k}": [
            g for g, p in zip(genes, popularity, strict=True) if rng.uniform() < 0.01 + 0.1 * p
        ]
        for k in range(40)
    }
    rows = [
        (d, g, [4 * p, *rng.normal(size=7)])
        for d in ("d1", "d2")
        for g, p in zip(genes, popularity, strict=True)
    ]
    blocks = C.embedding_blocks(_embedding(rows))
    scores = C.coherence_scores(blocks, {"lib": sets}, seed=0)
    for scope in ("within", "unified"):
        assert scores[f"coherence_{scope}:lib"] > 0.57
        assert abs(scores[f"coherence_{scope}_matched:lib"] - 0.5) < 0.03
    # The negatives use each gene as often as the positives do, and share no set.
    universe = C.pair_universe(blocks, sets)
    pairs = C.sample_gene_pairs(blocks, sets, "unified", per_class=500, seed=1, universe=universe)
    matched = C.gene_matched_pairs(pairs, universe, "unified", seed=1)
    pos, neg = matched.label, ~matched.label
    assert neg.sum() == pos.sum() == 500
    assert not universe.shares_set[matched.first[neg], matched.second[neg]].any()
    count = lambda keep: np.bincount(  # noqa: E731
        np.r_[matched.first[keep], matched.second[keep]], minlength=matched.genes.size
    )
    assert np.array_equal(count(pos), count(neg))
    # Planted modules: what is known about which genes belong together survives matching.
    centres = rng.normal(size=(6, 8)) * 3
    module = {g: i % 6 for i, g in enumerate(genes)}
    modules = {f"m{k}": [g for g in genes if module[g] == k] for k in range(6)}
    rows = [(d, g, centres[module[g]] + rng.normal(size=8)) for d in ("d1", "d2") for g in genes]
    scores = C.coherence_scores(C.embedding_blocks(_embedding(rows)), {"lib": modules}, seed=0)
    assert scores["coherence_within_matched:lib"] > 0.95
    assert scores["coherence_unified_matched:lib"] > 0.95


def test_edge_auc_by_dataset_and_same_gene_alignment():
    emb = _embedding(
        [
            ("d1", "A", [1, 0, 0]),
            ("d1", "B", [0.9, 0.1, 0]),
            ("d1", "C", [0, 0, 1]),
            ("d2", "A", [1, 0.05, 0]),
            ("d2", "C", [0, 0.1, 1]),
            ("d2", "D", [0, 1, 0]),
        ]
    )
    adjacency = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]])
    graphs = {"d1": _Graph(["A", "B", "C"], np.zeros((3, 2)), adjacency)}
    blocks = C.embedding_blocks(emb)
    assert C.edge_auc_by_dataset(blocks, graphs) == {"d1": 1.0}
    alignment = C.same_gene_alignment(blocks)
    assert alignment["pairs"] == 4  # A and C, in both directions
    assert alignment["top1"] == 1.0 and alignment["percentile"] == 0.0
    assert alignment["cosine"] > 0.99
    # Swap C's instance in d2 for D's direction: C's other instance is no longer nearest.
    emb.X[4] = [0, 1, 0.1]
    worse = C.same_gene_alignment(C.embedding_blocks(emb))
    assert worse["top1"] < 1.0
    assert binary_auc(np.array([1, 0]), np.array([0.9, 0.1])) == 1.0


def test_per_dataset_coherence_scores_each_dataset_alone():
    """Noise shared by both datasets and noise drawn afresh in each give datasets of the same
    quality: ``per_dataset`` scores them alike, while ``within`` rewards the fresh noise,
    whose average over the two datasets is cleaner than either."""
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(10, 8))
    genes = [f"G{i}" for i in range(400)]
    module = {g: i // 40 for i, g in enumerate(genes)}
    sets = {f"m{k}": [g for g in genes if module[g] == k] for k in range(10)}
    noise = {g: 2.0 * rng.normal(size=8) for g in genes}
    shared = [(d, g, centres[module[g]] + noise[g]) for d in ("d1", "d2") for g in genes]
    fresh = [(d, g, centres[module[g]] + 2.0 * rng.normal(size=8)) for d, g, _ in shared]
    one = {
        k: C.coherence_scores(C.embedding_blocks(_embedding(r)), {"lib": sets}, seed=0)
        for k, r in (("shared", shared), ("fresh", fresh))
    }
    assert 0.6 < one["shared"]["coherence_per_dataset:lib"] < 0.9
    gap = one["fresh"]["coherence_per_dataset:lib"] - one["shared"]["coherence_per_dataset:lib"]
    assert abs(gap) < 0.03
    assert one["fresh"]["coherence_within:lib"] > one["shared"]["coherence_within:lib"] + 0.03
    # A dataset without annotated genes is left out of the mean.
    blocks = C.embedding_blocks(
        _embedding([*shared, ("d3", "X1", [1.0] * 8), ("d3", "X2", [0.5] * 8)])
    )
    own = C.per_dataset_coherence(blocks, sets)
    assert np.isnan(own["d3"]) and np.isfinite(own["d1"])


def test_pairs_per_set_weigh_every_set_alike_and_respect_the_scope():
    """Unified: each of the four sets gets a quarter of the draws, the two 2-gene sets too
    (uniform pairs would give each of them 1 pair in 5,732). Within: the set no dataset holds
    two genes of is never drawn, and the set with one held pair among 4,950 gets exactly
    that pair."""
    rng = np.random.default_rng(6)
    big = [f"B{i}" for i in range(40)]
    rare = [f"R{i}" for i in range(100)]
    rows = [("d1", g, rng.normal(size=4)) for g in ["A", "C", *big]]
    rows += [("d2", g, rng.normal(size=4)) for g in ["N1", "R0", "R1"]]
    rows += [("d0", "N2", rng.normal(size=4))]
    rows += [(f"r{i}", g, rng.normal(size=4)) for i, g in enumerate(rare[2:])]
    blocks = C.embedding_blocks(_embedding(rows))
    sets = {"small": ["A", "C"], "big": big, "never": ["N1", "N2"], "rare": rare}
    universe = C.pair_universe(blocks, sets)
    name = dict(enumerate(universe.genes))

    def drawn_sets(pairs):
        return [
            next(k for k, m in sets.items() if name[a] in m and name[b] in m)
            for a, b in zip(pairs.first, pairs.second, strict=True)
        ]

    unified = C.sample_pairs_per_set(universe, "unified", count=4000, seed=0)
    share = pd.Series(drawn_sets(unified)).value_counts(normalize=True)
    assert set(share.index) == set(sets) and all(abs(share - 0.25) < 0.03)
    within = C.sample_pairs_per_set(universe, "within", count=3000, seed=0)
    assert within.label.all() and (within.n_shared >= 1).all()
    share = pd.Series(drawn_sets(within)).value_counts(normalize=True)
    assert set(share.index) == {"small", "big", "rare"} and all(abs(share - 1 / 3) < 0.04)
    rare_pairs = {
        frozenset((name[a], name[b]))
        for a, b, s in zip(within.first, within.second, drawn_sets(within), strict=True)
        if s == "rare"
    }
    assert rare_pairs == {frozenset(("R0", "R1"))}
    again = C.sample_pairs_per_set(universe, "within", count=3000, seed=0)
    assert np.array_equal(again.first, within.first) and np.array_equal(again.second, within.second)


def test_coherence_per_set_counts_specific_sets_as_much_as_broad_ones():
    """Eight 20-gene modules the embedding knows and one broad set of 100 genes it ignores:
    uniform pairs are mostly the broad set's (4,950 of its pairs against 1,520), so plain
    coherence stays low, while with every set weighing the same the modules decide."""
    rng = np.random.default_rng(7)
    genes = [f"G{i}" for i in range(260)]
    sets = {f"m{k}": genes[20 * k : 20 * k + 20] for k in range(8)}
    sets["broad"] = genes[160:260]
    centres = rng.normal(size=(8, 16)) * 3
    rows = [
        (d, g, (centres[i // 20] if i < 160 else 0) + rng.normal(size=16))
        for d in ("d1", "d2")
        for i, g in enumerate(genes)
    ]
    scores = C.coherence_scores(C.embedding_blocks(_embedding(rows)), {"lib": sets}, seed=0)
    for scope in ("within", "unified"):
        assert scores[f"coherence_{scope}:lib"] < 0.75
        assert scores[f"coherence_{scope}_per_set:lib"] > 0.9
    assert "each pair sharing a set is drawn by a set first" in metric_reading(
        "coherence_unified_per_set:lib"
    )

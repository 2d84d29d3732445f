"""CS-CORE: exact reference values, invariances, pitfalls, and statistical behaviour."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy import stats

from benchmarks.cscore_numpy_reference import cscore_numpy
from musegnn_core.graphs.cscore import CSCoreResult, _gram, coexpression_adjacency, cscore

# Toy example of shared/docs/cscore-sparkx.md §3.1(a); the Python and R references agree on it.
TOY_DEPTH = np.array(
    [1925, 1692, 2490, 1905, 1383, 2166, 3470, 2903, 1272, 960, 1324, 1846, 565, 1621, 970,
     1254, 1377, 1544, 2221, 3045, 1695, 3580, 1296, 2155, 2840, 1895, 1247, 1140, 1438, 2018],
    dtype=float,
)  # fmt: skip
TOY_COUNTS = np.array(
    [
        [6, 7, 3, 1, 1, 0, 11, 18, 0, 0, 2, 0, 1, 3, 1, 3, 1, 7, 5, 7, 11, 5, 2, 3, 20, 6, 0, 10, 3, 7],
        [5, 0, 2, 0, 0, 0, 9, 6, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 1, 2, 2, 1, 1, 0, 2, 5, 1, 4, 0, 5],
        [6, 2, 2, 5, 17, 6, 14, 6, 1, 11, 5, 5, 0, 1, 1, 1, 5, 4, 11, 0, 4, 27, 6, 4, 3, 7, 14, 6, 3, 1],
        [0, 0, 4, 1, 3, 0, 2, 0, 1, 0, 4, 0, 1, 0, 1, 4, 0, 0, 0, 3, 1, 0, 3, 0, 1, 2, 0, 0, 1, 0],
    ],
    dtype=float,
).T  # fmt: skip

PAIRS = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


def simulate(
    n_cells: int = 2000,
    n_genes: int = 30,
    block: int = 10,
    rho: float = 0.5,
    shape: float = 2.0,
    mean: float = 1e-3,
    seed: int = 0,
):
    """Poisson counts of Gamma latents tied by a Gaussian copula with block correlation.

    Depths are log-normal (median 3000, floor 400) like droplet data; ``mean`` is the
    median latent expression per UMI. Returns counts, depths, the latent matrix and the
    copula correlation.
    """
    rng = np.random.default_rng(seed)
    label = np.arange(n_genes) // block
    corr = np.where(label[:, None] == label[None, :], rho, 0.0)
    np.fill_diagonal(corr, 1.0)
    z = rng.standard_normal((n_cells, n_genes)) @ np.linalg.cholesky(corr).T
    mu = rng.lognormal(np.log(mean), 0.5, n_genes)
    latent = stats.gamma.ppf(stats.norm.cdf(z), a=shape, scale=mu / shape)
    depth = np.maximum(rng.lognormal(np.log(3000), 0.5, n_cells), 400)
    counts = rng.poisson(depth[:, None] * latent).astype(float)
    return counts, depth, latent, corr


@pytest.fixture(scope="module")
def toy() -> CSCoreResult:
    return cscore(TOY_COUNTS, TOY_DEPTH, device="cpu")


@pytest.fixture(scope="module")
def sim():
    counts, depth, latent, corr = simulate()
    return counts, depth, latent, corr, cscore(counts, depth, device="cpu")


# --- exact reference values -------------------------------------------------------------


def test_toy_moments_and_iterations(toy):
    assert toy.n_iter == 2
    np.testing.assert_allclose(
        toy.mu, [2.4719047e-3, 8.320153e-4, 3.3497943e-3, 6.2179817e-4], rtol=1e-7
    )
    np.testing.assert_allclose(
        toy.sigma2, [3.4606548e-6, 5.5335486e-7, 7.6173391e-6, 3.4552432e-7], rtol=1e-7
    )


def test_toy_estimates(toy):
    expected = [0.91508483, -0.33622414, -0.30503291, -0.070102511, -0.35125997, -0.031247961]
    got = [toy.est[i, j] for i, j in PAIRS]
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(np.diag(toy.est), 1.0)


def test_toy_pvalues_and_statistics(toy):
    expected = [2.1454577e-3, 0.17105026, 0.32472397, 0.80341191, 0.30494176, 0.91687227]
    np.testing.assert_allclose([toy.p_value[i, j] for i, j in PAIRS], expected, rtol=1e-7)
    np.testing.assert_allclose(
        np.diag(toy.p_value), [5.2302819e-8, 7.7176778e-8, 5.4857442e-8, 4.4184742e-8], rtol=1e-7
    )
    np.testing.assert_allclose(
        [toy.test_stat[0, 1], toy.test_stat[0, 2], toy.test_stat[1, 2], toy.test_stat[0, 0]],
        [3.0693212, -1.3688369, -0.2489339, 5.4432987],
        rtol=1e-7,
    )


def test_toy_musegnn_adjacency(toy):
    adj = coexpression_adjacency(toy.p_value).toarray()
    expected = np.eye(4, dtype=bool)
    expected[0, 1] = expected[1, 0] = True
    np.testing.assert_array_equal(adj, expected)


def test_input_types_agree(toy):
    for counts in (sp.csr_matrix(TOY_COUNTS), torch.tensor(TOY_COUNTS)):
        res = cscore(counts, torch.tensor(TOY_DEPTH), device="cpu")
        np.testing.assert_allclose(res.p_value, toy.p_value, rtol=1e-12)
        np.testing.assert_allclose(res.est, toy.est, rtol=1e-12)


def test_numpy_reference_agrees(sim):
    counts, depth, *_, res = sim
    # Add an under-dispersed gene (negative variance) to cover the NaN/zero-row paths too.
    flat = np.round(depth * 1e-3)[:, None]
    x = np.hstack([counts, flat])
    res = cscore(x, depth, device="cpu")
    ref = cscore_numpy(x, depth)
    assert res.n_iter == ref["n_iter"]
    for key in ("est", "p_value", "test_stat"):
        np.testing.assert_allclose(getattr(res, key), ref[key], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.mu, ref["mu"], rtol=1e-12)
    np.testing.assert_allclose(res.sigma2, ref["sigma2"], rtol=1e-10)


# --- structural properties and invariances ---------------------------------------------------


def test_outputs_symmetric_and_bounded(sim):
    *_, res = sim
    for a in (res.est, res.p_value, res.test_stat):
        np.testing.assert_allclose(a, a.T, rtol=0, atol=0)
    np.testing.assert_array_equal(np.diag(res.est), 1.0)
    assert np.abs(res.est).max() <= 1.0
    assert np.nanmax(res.p_value) <= 1.0 and np.nanmin(res.p_value) >= 0.0
    assert np.all(np.diag(res.p_value) < 1e-10)


def test_gram_is_exactly_symmetric_on_both_paths():
    a = torch.randn(50, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for x in (a, a.to(torch.bfloat16)):  # NumPy's syrk; the plain matmul other devices use
        g = _gram(x)
        assert torch.equal(g, g.T)
        torch.testing.assert_close(g.double(), a.T @ a, rtol=0.05, atol=0.5)


def test_invariant_to_depth_scaling(toy):
    res = cscore(TOY_COUNTS, TOY_DEPTH * 3.7e-3, device="cpu")
    np.testing.assert_allclose(res.est, toy.est, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.p_value, toy.p_value, rtol=1e-12)
    np.testing.assert_allclose(res.test_stat, toy.test_stat, rtol=1e-12)
    np.testing.assert_allclose(res.mu * 3.7e-3, toy.mu, rtol=1e-12)


def test_invariant_to_cell_order(sim):
    counts, depth, *_, res = sim
    perm = np.random.default_rng(5).permutation(counts.shape[0])
    shuffled = cscore(counts[perm], depth[perm], device="cpu")
    np.testing.assert_allclose(shuffled.est, res.est, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(shuffled.p_value, res.p_value, rtol=1e-10, atol=1e-300)


def test_gene_permutation_permutes_outputs(toy):
    perm = np.array([2, 0, 3, 1])
    res = cscore(TOY_COUNTS[:, perm], TOY_DEPTH, device="cpu")
    np.testing.assert_allclose(res.p_value, toy.p_value[np.ix_(perm, perm)], rtol=1e-12)
    np.testing.assert_allclose(res.est, toy.est[np.ix_(perm, perm)], rtol=1e-12)


# --- pitfalls ---------------------------------------------------------------------------------


def test_negative_variance_gene_gets_zero_row(toy):
    # Counts exactly proportional to depth: less variable than Poisson, so σ_jj < 0.
    flat = np.round(TOY_DEPTH * 2e-3)[:, None]
    res = cscore(np.hstack([TOY_COUNTS, flat]), TOY_DEPTH, device="cpu")
    assert res.sigma2[4] < 0
    assert res.negative_variance.tolist() == [False, False, False, False, True]
    np.testing.assert_array_equal(res.est[4, :4], 0.0)
    np.testing.assert_array_equal(res.est[:4, 4], 0.0)
    assert res.est[4, 4] == 1.0
    assert np.all(np.isfinite(res.est))


def test_all_zero_gene_does_not_crash(toy):
    res = cscore(np.hstack([TOY_COUNTS, np.zeros((30, 1))]), TOY_DEPTH, device="cpu")
    assert res.negative_variance[4]
    assert np.all(np.isnan(res.p_value[4]))  # left NaN, as documented
    np.testing.assert_array_equal(res.est[4, :4], 0.0)
    assert np.all(np.isfinite(res.est))
    adj = coexpression_adjacency(res.p_value).toarray()
    assert adj[4].sum() == 1 and adj[4, 4]  # only its self-loop
    # θ̄ is computed from positive θ only, so the other genes are untouched.
    np.testing.assert_allclose(res.p_value[:4, :4], toy.p_value, rtol=1e-12)


def test_no_positive_theta_stops_gracefully():
    # Every gene under-dispersed: θ̄ is undefined, the loop stops before its first pass.
    depth = TOY_DEPTH
    x = np.round(np.outer(depth, [1e-3, 2e-3, 3e-3]))
    res = cscore(x, depth, device="cpu")
    assert res.n_iter == 0
    assert res.negative_variance.all()
    np.testing.assert_array_equal(res.est, np.eye(3))


def test_rejects_bad_depths():
    with pytest.raises(ValueError):
        cscore(TOY_COUNTS, np.r_[TOY_DEPTH[:-1], 0.0], device="cpu")
    with pytest.raises(ValueError):
        cscore(TOY_COUNTS, TOY_DEPTH[:-1], device="cpu")


# --- statistical behaviour ------------------------------------------------------------------


def test_recovers_known_correlation_better_than_pearson(sim):
    counts, depth, latent, corr, res = sim
    truth = np.corrcoef(latent.T)  # what an oracle seeing the latent expression would get
    lognorm = np.log1p(counts / depth[:, None] * 1e4)
    pearson = np.corrcoef(lognorm.T)
    iu = np.triu_indices(corr.shape[0], k=1)
    err_cs = np.abs(res.est - truth)[iu].mean()
    err_pearson = np.abs(pearson - truth)[iu].mean()
    assert err_cs < 0.5 * err_pearson
    in_block = corr[iu] > 0
    assert abs(res.est[iu][in_block].mean() - 0.5) < 0.07  # Pearson is attenuated to ~0.25
    assert abs(res.est[iu][~in_block].mean()) < 0.03


def test_null_pvalues_uniform():
    # The R package's independent-gene setting: Gamma(4.83) latents, log-normal depths.
    counts, depth, *_ = simulate(n_genes=40, rho=0.0, shape=4.83, mean=3.65e-4, seed=101)
    res = cscore(counts, depth, device="cpu")
    p = res.p_value[np.triu_indices(40, k=1)]
    assert stats.kstest(p, "uniform").pvalue > 0.01
    assert 0.02 < (p < 0.05).mean() < 0.09


# --- adjacency rule -------------------------------------------------------------------------


def test_adjacency_is_strict_and_ignores_nan():
    p = np.array(
        [
            [0.0, 0.005, 0.0049, np.nan],
            [0.005, 0.0, np.nan, 0.2],
            [0.0049, np.nan, np.nan, 1e-9],
            [np.nan, 0.2, 1e-9, 0.0],
        ]
    )
    adj = coexpression_adjacency(p, self_loops=False).toarray()
    expected = np.zeros((4, 4), dtype=bool)
    expected[0, 2] = expected[2, 0] = True  # 0.0049 < 0.005
    expected[2, 3] = expected[3, 2] = True
    np.testing.assert_array_equal(adj, expected)  # 0.005 is not < 0.005; NaN never an edge
    with_loops = coexpression_adjacency(p, self_loops=True).toarray()
    np.testing.assert_array_equal(with_loops, expected | np.eye(4, dtype=bool))
    assert with_loops.dtype == bool


def test_adjacency_bh_is_sparser(sim):
    *_, res = sim
    raw = coexpression_adjacency(res.p_value, method="raw")
    bh = coexpression_adjacency(res.p_value, method="bh")
    assert (raw != raw.T).nnz == 0 and (bh != bh.T).nnz == 0
    assert 0 < bh.nnz < raw.nnz
    assert (bh > raw).nnz == 0  # every BH edge is a raw edge
    with pytest.raises(ValueError):
        coexpression_adjacency(res.p_value, method="bonferroni")


def test_bh_matches_scipy():
    rng = np.random.default_rng(3)
    p = rng.uniform(size=(12, 12)) ** 3
    p = np.triu(p, 1) + np.triu(p, 1).T
    iu = np.triu_indices(12, k=1)
    adjusted = stats.false_discovery_control(p[iu], method="bh")
    expected = np.zeros((12, 12), dtype=bool)
    expected[iu] = adjusted < 0.05
    expected |= expected.T
    got = coexpression_adjacency(p, threshold=0.05, method="bh", self_loops=False).toarray()
    np.testing.assert_array_equal(got, expected)

"""QC filters, mitochondrial genes, analytic Pearson residuals and HVGs (checked against scanpy)."""

from __future__ import annotations

import tracemalloc
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from musegnn_core.errors import ValidationError
from musegnn_core.graphs import hvg
from musegnn_core.graphs.hvg import (
    node_features,
    pearson_residuals,
    residual_variances,
    select_hvgs_pearson,
)
from musegnn_core.graphs.qc import (
    QCConfig,
    default_qc_config,
    is_mitochondrial,
    mad_bounds,
    reference_qc_config,
    run_qc,
)
from tests.conftest import requires_shared_data

# ---------------------------------------------------------------- helpers


def make_counts(n_cells: int, n_genes: int, seed: int = 0, density: float = 0.3) -> sp.csr_matrix:
    """Sparse negative-binomial-like counts with varying depth and gene means."""
    rng = np.random.default_rng(seed)
    depth = rng.lognormal(0.0, 0.5, size=(n_cells, 1))
    means = rng.lognormal(0.0, 1.0, size=(1, n_genes))
    lam = depth * means * rng.gamma(2.0, 0.5, size=(n_cells, n_genes))
    counts = rng.poisson(lam) * (rng.random((n_cells, n_genes)) < density)
    return sp.csr_matrix(counts.astype(np.float32))


def scanpy_residuals(counts, theta=100, clip=None) -> np.ndarray:
    import scanpy as sc

    data = ad.AnnData(X=counts.astype(np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = sc.experimental.pp.normalize_pearson_residuals(
            data, theta=theta, clip=clip, inplace=False
        )
    return np.asarray(out["X"])


def scanpy_hvgs(adata: ad.AnnData, n_top: int) -> set[str]:
    import scanpy as sc

    data = adata.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.experimental.pp.highly_variable_genes(
            data, flavor="pearson_residuals", n_top_genes=n_top
        )
    return set(data.var_names[data.var["highly_variable"].to_numpy()])


def read_atlas(shared_data, name: str) -> tuple[ad.AnnData, dict]:
    adata = ad.read_h5ad(shared_data / "atlas" / f"{name}.h5ad")
    return adata, dict(adata.uns["dataset"])


# ---------------------------------------------------------------- mitochondrial genes


def test_human_mito_prefix_spares_lookalikes():
    names = ["MT-CO1", "MT-ND1", "MTOR", "MTHFD1", "MT1A", "MT2A", "ACTB", "mt-Co1"]
    assert is_mitochondrial(names, "human").tolist() == [
        True, True, False, False, False, False, False, False,
    ]  # fmt: skip


def test_mouse_mito_prefix_is_lowercase_with_hyphen():
    names = ["mt-Co1", "mt-Nd5", "Mtor", "Mt1", "Mthfd1", "MT-CO1"]
    assert is_mitochondrial(names, "mouse").tolist() == [True, True, False, False, False, False]


def test_other_species_accepts_both_prefixes():
    names = ["MT-CO1", "mt-Co1", "MTOR", "Mt1", "mtor"]
    assert is_mitochondrial(names, "other").tolist() == [True, True, False, False, False]
    assert is_mitochondrial(names, "Human").tolist() == [True, False, False, False, False]


def test_unknown_species_is_rejected():
    with pytest.raises(ValidationError, match="species"):
        is_mitochondrial(["MT-CO1"], "zebrafish")


# ---------------------------------------------------------------- QC configuration


def test_default_configs_per_modality():
    scrna = default_qc_config("scRNA-seq")
    assert scrna.max_genes is None  # no fixed 4000 cap: it deletes half of the C1 cells
    assert scrna.max_pct_mito == 20.0
    assert scrna.min_genes == 200
    assert scrna.outlier_nmads == 5.0 and scrna.outlier_sides == "both"
    spatial = default_qc_config("spatial")
    assert spatial.outlier_sides == "lower"  # dense tissue spots are not multiplets
    assert spatial.max_pct_mito == 50.0 and spatial.min_genes == 10
    atac = default_qc_config("scatac")
    assert atac.max_pct_mito is None and atac.min_genes <= 10 and atac.min_cells == 3
    assert default_qc_config("atac") == atac
    with pytest.raises(ValidationError, match="modality"):
        default_qc_config("proteomics")


def test_reference_config_reproduces_notebook_thresholds():
    ref = reference_qc_config("scrna")
    assert (ref.max_genes, ref.max_pct_mito, ref.outlier_nmads, ref.min_cells) == (
        4000, 20.0, None, 0,
    )  # fmt: skip
    assert reference_qc_config("scatac").min_genes == 200


def test_invalid_outlier_settings_rejected():
    with pytest.raises(ValidationError):
        QCConfig(outlier_sides="middle")
    with pytest.raises(ValidationError):
        QCConfig(outlier_nmads=0)


def test_mad_bounds_are_robust_and_handle_zero_spread():
    values = np.r_[np.linspace(800, 1250, 100), 1e6]
    low, high = mad_bounds(values, 5.0)
    assert low < 800 and 1250 < high < 1e6  # the 1e6 multiplet is outside, the rest inside
    assert mad_bounds(np.full(10, 7.0), 3.0) == (-np.inf, np.inf)


# ---------------------------------------------------------------- run_qc on a hand-built dataset


def synthetic_qc_data() -> ad.AnnData:
    """100 cells: 5 with >20% MT counts, 3 with only 10 genes; one rare and one empty gene."""
    rng = np.random.default_rng(1)
    named = ["MT-CO1", "MT-ND1", "MTOR", "MT1A", "MTHFD1"]
    genes = [*named, *[f"G{i}" for i in range(200)], "RARE", "EMPTY"]
    x = rng.poisson(2.0, size=(100, len(genes))).astype(np.float32)
    x[:, :2] = rng.poisson(1.0, size=(100, 2))
    x[:5, 0] = 10_000  # high mitochondrial share
    x[5:8, 15:] = 0  # only 15 genes left (5 named + G0..G9): fails min_genes=50
    x[:, -2] = 0
    x[[20, 30], -2] = 4  # RARE: detected in 2 cells
    x[:, -1] = 0  # EMPTY
    obs = pd.DataFrame(index=[f"c{i}" for i in range(100)])
    return ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=pd.DataFrame(index=genes))


def test_run_qc_report_numbers_and_outputs():
    adata = synthetic_qc_data()
    original = adata.X.copy()
    config = QCConfig(min_genes=50, max_pct_mito=20.0, outlier_nmads=None, min_cells=3)
    out, report = run_qc(adata, "scrna", "human", config)

    assert (report.n_cells_before, report.n_cells_after) == (100, 92)
    assert report.cells_failed["max_pct_mito"] == 5
    assert report.cells_failed["min_genes"] == 3
    assert report.n_cells_removed == 8
    assert report.n_mito_genes == 2
    assert report.genes_removed == {"mitochondrial": 2, "min_cells": 2}
    assert (report.n_genes_before, report.n_genes_after) == (207, 203)
    assert {"MTOR", "MT1A", "MTHFD1"} <= set(out.var_names)
    assert not {"MT-CO1", "MT-ND1", "RARE", "EMPTY"} & set(out.var_names)
    assert out.obs_names[0] == "c8"

    dense = original.toarray()
    kept = np.r_[8:100]
    np.testing.assert_allclose(out.obs["n_counts"], dense[kept, 2:].sum(axis=1))
    np.testing.assert_allclose(out.obs["total_counts"], dense[kept].sum(axis=1))
    assert (out.var["n_cells"] >= 3).all()
    assert sp.issparse(out.X) and out.X.dtype == np.float32
    assert (original != adata.X).nnz == 0 and adata.shape == (100, 207)  # input untouched
    assert "92" in report.summary() and report.to_dict()["n_cells_removed"] == 8


def test_outlier_rule_drops_multiplet_and_keeps_the_rest():
    rng = np.random.default_rng(2)
    x = rng.poisson(3.0, size=(80, 300)).astype(np.float32)
    x[0] *= 60  # a multiplet-like cell: 60x the depth
    adata = ad.AnnData(X=sp.csr_matrix(x), var=pd.DataFrame(index=[f"G{i}" for i in range(300)]))
    out, report = run_qc(adata, "scrna", "human")
    assert report.cells_failed["outlier_high_counts"] == 1
    assert out.n_obs == 79 and "0" not in set(out.obs_names)


def test_too_few_cells_raises_clear_error():
    adata = synthetic_qc_data()
    with pytest.raises(ValidationError, match=r"left 0 of 100 cells"):
        run_qc(adata, "scrna", "human", QCConfig(min_genes=10_000))
    with pytest.raises(ValidationError, match="cells"):
        run_qc(adata[:10].copy(), "scrna", "human", QCConfig(outlier_nmads=None))


def test_too_few_genes_raises_clear_error():
    adata = synthetic_qc_data()
    with pytest.raises(ValidationError, match="genes"):
        run_qc(adata, "scrna", "human", QCConfig(outlier_nmads=None, min_cells=1000))


# ---------------------------------------------------------------- QC on the real datasets

#: Cells kept by the default QC on the shared data (measured; see default_qc_config).
EXPECTED_CELLS = {
    "scrna_human_pbmc3k_10x": (2700, 2690),
    "scrna_human_pancreas_pdac_indrop": (1926, 1894),
    "scrna_human_brain_cortex_darmanis_c1": (466, 466),
    "scrna_mouse_pancreas_e15_10x": (3696, 3696),
    "scrna_mouse_brain_zeisel_subset": (200, 200),
    "spatial_mouse_olfactory_bulb_st": (262, 260),
    "spatial_human_breast_cancer_st": (251, 250),
    "scatac_human_pbmc_gene_activity": (100, 100),
}


@requires_shared_data
@pytest.mark.parametrize("name", sorted(EXPECTED_CELLS))
def test_default_qc_keeps_real_datasets(shared_data, name):
    adata, meta = read_atlas(shared_data, name)
    out, report = run_qc(adata, meta["modality"], meta["species"])
    assert (report.n_cells_before, report.n_cells_after) == EXPECTED_CELLS[name]
    assert out.n_vars >= 400
    assert not is_mitochondrial(out.var_names, meta["species"]).any()
    assert np.all(out.obs["n_counts"].to_numpy() > 0)


@requires_shared_data
def test_fixed_4000_gene_cap_would_delete_half_of_c1_cells(shared_data):
    adata, _ = read_atlas(shared_data, "scrna_human_brain_cortex_darmanis_c1")
    _, ref = run_qc(adata, "scrna", "human", reference_qc_config("scrna"))
    _, ours = run_qc(adata, "scrna", "human")
    assert ref.n_cells_after == 232 and ours.n_cells_after == 466


@requires_shared_data
def test_real_mito_genes_removed_lookalikes_kept(shared_data):
    mouse, _ = read_atlas(shared_data, "scrna_mouse_pancreas_e15_10x")
    out, report = run_qc(mouse, "scrna", "mouse")
    assert report.genes_removed["mitochondrial"] == 3
    assert "mt-Co1" in set(mouse.var_names) and "mt-Co1" not in set(out.var_names)
    human, _ = read_atlas(shared_data, "scrna_human_pbmc3k_10x")
    out, report = run_qc(human, "scrna", "human")
    assert report.n_mito_genes == 13 and report.cells_failed["max_pct_mito"] == 2
    assert {"MTOR", "MTHFD1", "MT2A", "MT1X"} <= set(out.var_names)


# ---------------------------------------------------------------- Pearson residuals


def test_residuals_match_scanpy_on_synthetic_sparse():
    counts = make_counts(150, 80, seed=3)
    counts = counts[:, np.asarray(counts.sum(axis=0)).ravel() > 0]
    ours = pearson_residuals(counts)
    assert ours.dtype == np.float32 and ours.shape == counts.shape
    np.testing.assert_allclose(ours, scanpy_residuals(counts), atol=1e-5, rtol=1e-6)
    np.testing.assert_allclose(
        pearson_residuals(counts.toarray(), theta=10, clip=2.0),
        scanpy_residuals(counts, theta=10, clip=2.0),
        atol=1e-5,
    )


def test_residuals_of_unexpressed_gene_are_zero_not_nan():
    counts = make_counts(40, 10, seed=4).toarray()
    counts[:, 3] = 0
    res = pearson_residuals(sp.csr_matrix(counts))
    assert np.isfinite(res).all() and np.all(res[:, 3] == 0)


def test_chunking_does_not_change_results(monkeypatch):
    counts = make_counts(120, 60, seed=5)
    whole = pearson_residuals(counts)
    variances = residual_variances(counts)
    monkeypatch.setattr(hvg, "CHUNK_ELEMENTS", 500)  # 4 genes per chunk
    np.testing.assert_array_equal(pearson_residuals(counts), whole)
    np.testing.assert_allclose(residual_variances(counts), variances, rtol=1e-12)


def test_invalid_residual_parameters():
    counts = make_counts(20, 5)
    with pytest.raises(ValidationError, match="theta"):
        pearson_residuals(counts, theta=0)
    with pytest.raises(ValidationError, match="clip"):
        pearson_residuals(counts, clip=-1)
    with pytest.raises(ValidationError):
        select_hvgs_pearson(ad.AnnData(X=counts), n_genes=0)


def test_fewer_usable_genes_than_requested_returns_all():
    counts = make_counts(60, 30, seed=6).toarray()
    counts[:, :5] = 0  # 5 genes never detected: not usable
    adata = ad.AnnData(
        X=sp.csr_matrix(counts), var=pd.DataFrame(index=[f"G{i}" for i in range(30)])
    )
    genes = select_hvgs_pearson(adata, n_genes=1000)
    assert sorted(genes) == sorted(f"G{i}" for i in range(5, 30))
    variances = residual_variances(adata.X)
    ranked = variances[[int(g[1:]) for g in genes]]
    assert np.all(np.diff(ranked) <= 0)  # most variable first


def test_node_features_are_gene_by_cell_residual_rows():
    counts = make_counts(50, 40, seed=7)
    names = [f"G{i}" for i in range(40)]
    adata = ad.AnnData(X=counts, var=pd.DataFrame(index=names))
    feats = node_features(adata, ["G7", "G2", "G30"])
    assert feats.shape == (3, 50) and feats.dtype == np.float32
    full = pearson_residuals(counts)
    np.testing.assert_array_equal(feats, full[:, [7, 2, 30]].T)
    with pytest.raises(ValidationError, match="not in the dataset"):
        node_features(adata, ["G1", "NOPE"])


@requires_shared_data
def test_residuals_match_scanpy_on_pbmc3k(shared_data):
    adata, _ = read_atlas(shared_data, "scrna_human_pbmc3k_10x")
    rng = np.random.default_rng(0)
    cells = np.sort(rng.choice(adata.n_obs, 600, replace=False))
    counts = adata.X[cells]
    counts = counts[:, np.asarray(counts.sum(axis=0)).ravel() > 0]
    ours = pearson_residuals(counts)
    theirs = scanpy_residuals(counts)
    diff = np.abs(ours - theirs).max()
    print(f"pbmc3k 600 cells x {counts.shape[1]} genes: max |ours - scanpy| = {diff:.2e}")
    assert diff < 1e-5


@requires_shared_data
@pytest.mark.parametrize("name", ["scrna_human_pbmc3k_10x", "scrna_human_brain_cortex_darmanis_c1"])
def test_hvgs_agree_with_scanpy_on_real_data(shared_data, name):
    adata, meta = read_atlas(shared_data, name)
    adata, _ = run_qc(adata, meta["modality"], meta["species"])
    ours = select_hvgs_pearson(adata, n_genes=1000)
    theirs = scanpy_hvgs(adata, 1000)
    overlap = len(set(ours) & theirs)
    print(f"{name}: {overlap}/1000 HVGs shared with scanpy")
    assert len(ours) == len(set(ours)) == 1000
    assert overlap >= 990


@requires_shared_data
def test_residual_variances_keep_memory_small(shared_data):
    """All 32738 pbmc3k genes x 2700 cells: dense float64 would be 707 MB."""
    adata, _ = read_atlas(shared_data, "scrna_human_pbmc3k_10x")
    tracemalloc.start()
    try:
        residual_variances(adata.X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"peak traced memory: {peak / 2**20:.0f} MiB")
    assert peak < 200 * 2**20

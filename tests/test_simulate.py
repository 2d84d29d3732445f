"""The simulated atlas: determinism, format, metadata, orthologs and planted structure."""

from __future__ import annotations

import itertools
import os
import re
import time

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.stats import spearmanr

from musegnn_core.data.simulate import (
    HUMAN_MITO_GENES,
    ModuleSpec,
    SimulatedAtlas,
    SimulationConfig,
    module_of_gene,
    mouse_style,
    simulate_atlas,
    write_simulated_atlas,
)
from musegnn_core.graphs.orthologs import (
    load_ortholog_table,
    map_genes_to_human,
    one_to_one_orthologs,
)
from musegnn_core.graphs.qc import is_mitochondrial
from musegnn_core.metadata import MODALITIES, check_name


@pytest.fixture(scope="module")
def atlas() -> SimulatedAtlas:
    return simulate_atlas(seed=0)


def human_names(atlas: SimulatedAtlas, adata: ad.AnnData) -> list[str | None]:
    """Gene names in human symbols (mouse through the one-to-one orthologs)."""
    species = adata.uns["dataset"]["species"]
    mapped = map_genes_to_human(list(adata.var_names), species, atlas.orthologs)
    return list(mapped["human"])


def log_normalised(adata: ad.AnnData) -> np.ndarray:
    """log1p of counts per 10k, dense, good-quality cells only."""
    x = adata.X[~adata.obs["sim_low_quality"].to_numpy()].toarray()
    return np.log1p(x / x.sum(axis=1, keepdims=True) * 1e4)


def mean_pairwise_correlation(values: np.ndarray) -> float:
    corr = np.corrcoef(values.T)
    return float(np.nanmean(corr[np.triu_indices(corr.shape[0], k=1)]))


def columns_of(names: list[str | None], wanted: set[str]) -> np.ndarray:
    return np.array([i for i, g in enumerate(names) if g in wanted])


# ------------------------------------------------------------------------ determinism


def test_same_seed_gives_identical_atlas(atlas):
    again = simulate_atlas(seed=0)
    assert again.names == atlas.names
    for a, b in zip(atlas.datasets, again.datasets, strict=True):
        assert list(a.var_names) == list(b.var_names)
        assert list(a.obs_names) == list(b.obs_names)
        assert (a.X != b.X).nnz == 0
        if "spatial" in a.obsm:
            np.testing.assert_array_equal(a.obsm["spatial"], b.obsm["spatial"])
    assert again.modules == atlas.modules
    pd.testing.assert_frame_equal(again.orthologs, atlas.orthologs)


def test_different_seed_gives_different_data(atlas):
    other = simulate_atlas(seed=1)
    assert other.names == atlas.names
    assert other.modules != atlas.modules
    first, second = atlas.datasets[0], other.datasets[0]
    shared = first.var_names.intersection(second.var_names)
    assert first.shape != second.shape or (first.X != second.X).nnz > 0
    x1 = first[:, shared].X.toarray()[:100]
    x2 = second[:, shared].X.toarray()[:100]
    assert not np.array_equal(x1, x2)


def test_default_atlas_generates_quickly():
    start = time.perf_counter()
    simulate_atlas(seed=3)
    assert time.perf_counter() - start < 10.0


# --------------------------------------------------------------------------- format


def test_matrices_are_raw_integer_counts(atlas):
    assert len(atlas.datasets) >= 5
    for adata in atlas.datasets:
        assert isinstance(adata.X, sp.csr_matrix)
        assert adata.X.dtype == np.float32
        values = adata.X.data
        assert values.min() >= 0
        np.testing.assert_array_equal(values, np.round(values))
        assert 150 <= adata.n_obs <= 600
        assert 500 <= adata.n_vars <= 900
        assert adata.var_names.is_unique
        assert adata.obs_names.is_unique
        assert all(re.fullmatch(r"[ACGT]{16}-1", b) for b in adata.obs_names)
        assert np.asarray(adata.X.sum(axis=1)).min() > 0


def test_metadata_is_complete_and_valid(atlas):
    for adata in atlas.datasets:
        meta = adata.uns["dataset"]
        assert set(meta) == {"name", "species", "tissue", "modality", "technology"}
        assert check_name(meta["name"]) == meta["name"]
        assert meta["name"].startswith(f"sim_{meta['modality']}_{meta['species']}_")
        assert meta["species"] in ("human", "mouse")
        assert meta["modality"] in MODALITIES
        assert meta["tissue"] and meta["technology"]
        assert adata.uns["simulated"] is True
        if meta["modality"] == "spatial":
            coords = adata.obsm["spatial"]
            assert coords.shape == (adata.n_obs, 2)
            assert np.issubdtype(coords.dtype, np.floating)
            assert np.isfinite(coords).all()
            assert len(np.unique(coords, axis=0)) == adata.n_obs
        else:
            assert "spatial" not in adata.obsm
    metas = [a.uns["dataset"] for a in atlas.datasets]
    assert {m["species"] for m in metas} == {"human", "mouse"}
    assert {m["modality"] for m in metas} == {"scrna", "spatial", "scatac"}
    assert len({m["tissue"] for m in metas}) >= 3
    assert len(set(atlas.names)) == len(atlas.names)


def test_scatac_is_sparser_with_lower_counts(atlas):
    def median_total(adata):
        return float(np.median(np.asarray(adata.X.sum(axis=1)).ravel()))

    atac = next(a for a in atlas.datasets if a.uns["dataset"]["modality"] == "scatac")
    rnas = [a for a in atlas.datasets if a.uns["dataset"]["modality"] == "scrna"]
    assert all(median_total(atac) < median_total(r) / 2 for r in rnas)
    density = atac.X.nnz / (atac.n_obs * atac.n_vars)
    assert all(density < r.X.nnz / (r.n_obs * r.n_vars) for r in rnas)


def test_mitochondrial_genes_and_lookalikes_are_present(atlas):
    for adata in atlas.datasets:
        species = adata.uns["dataset"]["species"]
        names = list(adata.var_names)
        if species == "human":
            assert {"MT-CO1", "MT-ND1", "MTOR", "MTHFD1"} <= set(names)
        else:
            assert {"mt-Co1", "mt-Nd1", "Mtor", "Mthfd1"} <= set(names)
        assert is_mitochondrial(names, species).sum() == len(HUMAN_MITO_GENES)


def test_low_quality_cells_are_high_mitochondrial(atlas):
    """The damaged cells are what a < 20% mitochondrial cap is meant to remove."""
    flagged_somewhere = False
    for adata in atlas.datasets:
        species = adata.uns["dataset"]["species"]
        mito = is_mitochondrial(adata.var_names, species)
        totals = np.asarray(adata.X.sum(axis=1)).ravel()
        pct = 100 * np.asarray(adata.X[:, mito].sum(axis=1)).ravel() / totals
        low = adata.obs["sim_low_quality"].to_numpy()
        assert (pct[~low] < 20).mean() > 0.99
        if low.any():
            flagged_somewhere = True
            assert (pct[low] > 20).all()
    assert flagged_somewhere


# ------------------------------------------------------------------------ orthologs


def test_ortholog_table_has_hcop_columns(atlas):
    table = atlas.orthologs
    assert list(table.columns) == ["human_symbol", "mouse_symbol", "support_n"]
    assert table["support_n"].dtype.kind == "i"
    assert (table["support_n"] > 0).all()


def test_mouse_genes_map_back_through_one_to_one_orthologs(atlas):
    mouse = next(a for a in atlas.datasets if a.uns["dataset"]["species"] == "mouse")
    names = list(mouse.var_names)
    assert not any(n == n.upper() for n in names if any(c.isalpha() for c in n))
    mapped = map_genes_to_human(names, "mouse", atlas.orthologs)
    pairs = mapped.dropna()
    assert len(pairs) / len(names) > 0.9
    assert pairs["human"].is_unique
    for mouse_gene, human_gene in zip(pairs["original"], pairs["human"], strict=True):
        assert mouse_style(human_gene) == mouse_gene
    active = [m for m, ds in atlas.module_datasets.items() if mouse.uns["dataset"]["name"] in ds]
    planted = {g for m in active for g in atlas.modules[m]}
    assert planted <= set(pairs["human"])
    unmapped = set(mapped.loc[mapped["human"].isna(), "original"])
    assert any(g.startswith("Gm") for g in unmapped)


def test_one_to_one_filtering_matters(atlas):
    """The raw table has paralog hits and ties; filtering keeps the best 1:1 pairs only."""
    raw = atlas.orthologs
    assert raw["human_symbol"].duplicated().any()
    assert raw["mouse_symbol"].duplicated().any()
    mouse = next(a for a in atlas.datasets if a.uns["dataset"]["species"] == "mouse")
    in_data = raw[raw["mouse_symbol"].isin(mouse.var_names)]
    assert in_data["mouse_symbol"].duplicated().any() or in_data["human_symbol"].duplicated().any()
    pairs = one_to_one_orthologs(raw)
    assert pairs["human_symbol"].is_unique and pairs["mouse_symbol"].is_unique
    multi = raw.groupby("human_symbol")["support_n"].agg(["size", "max"])
    multi = multi[multi["size"] > 1]
    resolved = [
        h
        for h in multi.index
        if (raw[raw.human_symbol == h].support_n == multi.at[h, "max"]).sum() == 1
    ]
    assert resolved
    kept = set(pairs["human_symbol"])
    assert set(resolved) <= kept
    tied = set(multi.index) - set(resolved)
    assert tied
    assert not (tied & kept)


def test_datasets_share_hundreds_of_genes_but_not_all(atlas):
    genes = {
        name: {g for g in human_names(atlas, atlas.dataset(name)) if g} for name in atlas.names
    }
    for a, b in itertools.combinations(atlas.names, 2):
        shared = len(genes[a] & genes[b])
        assert 100 <= shared < min(len(genes[a]), len(genes[b])), (a, b, shared)


# ------------------------------------------------------------------ planted structure


def test_module_of_gene_covers_module_genes_only(atlas):
    lookup = module_of_gene(atlas)
    assert len(lookup) == sum(len(g) for g in atlas.modules.values())
    for module, genes in atlas.modules.items():
        assert 20 <= len(genes) <= 40
        assert all(lookup[g] == module for g in genes)
    assert "ACTB" not in lookup and "MT-CO1" not in lookup
    assert set(atlas.module_datasets) == set(atlas.modules)
    assert all(set(ds) <= set(atlas.names) for ds in atlas.module_datasets.values())


def test_modules_are_shared_and_specific(atlas):
    spread = {m: len(ds) for m, ds in atlas.module_datasets.items()}
    assert any(n == 1 for n in spread.values())
    assert any(n >= 3 for n in spread.values())
    species = {n: atlas.dataset(n).uns["dataset"]["species"] for n in atlas.names}
    modality = {n: atlas.dataset(n).uns["dataset"]["modality"] for n in atlas.names}
    assert any(len({species[d] for d in ds}) == 2 for ds in atlas.module_datasets.values())
    assert any(len({modality[d] for d in ds}) >= 2 for ds in atlas.module_datasets.values())


def test_planted_modules_are_correlated_background_is_not(atlas):
    lookup = module_of_gene(atlas)
    for adata in atlas.datasets:
        name = adata.uns["dataset"]["name"]
        names = human_names(atlas, adata)
        values = log_normalised(adata)
        background = columns_of(
            names, {g for g in names if g and g not in lookup and not g.startswith("MT-")}
        )
        background_corr = mean_pairwise_correlation(values[:, background[:200]])
        assert abs(background_corr) < 0.05, (name, background_corr)
        active = [m for m, ds in atlas.module_datasets.items() if name in ds]
        assert active
        for module in active:
            cols = columns_of(names, set(atlas.modules[module]))
            assert len(cols) == len(atlas.modules[module])
            within = mean_pairwise_correlation(values[:, cols])
            assert within > background_corr + 0.15, (name, module, within, background_corr)


def test_inactive_module_genes_are_background(atlas):
    """A module's genes measured where it is not active are independent there."""
    checked = 0
    for adata in atlas.datasets:
        name = adata.uns["dataset"]["name"]
        names = human_names(atlas, adata)
        values = log_normalised(adata)
        for module, datasets in atlas.module_datasets.items():
            cols = columns_of(names, set(atlas.modules[module]))
            if name in datasets or len(cols) < 5:
                continue
            assert mean_pairwise_correlation(values[:, cols]) < 0.08, (name, module)
            checked += 1
    assert checked >= 5


def module_score(atlas: SimulatedAtlas, adata: ad.AnnData, module: str) -> np.ndarray:
    cols = columns_of(list(adata.var_names), set(atlas.modules[module]))
    x = adata.X.toarray()
    return np.log1p(x / x.sum(axis=1, keepdims=True) * 1e4)[:, cols].mean(axis=1)


def test_spatial_modules_follow_their_patterns(atlas):
    spatial = next(a for a in atlas.datasets if "spatial" in a.obsm)
    coords = spatial.obsm["spatial"]
    kinds = {g["kind"]: m for m, g in atlas.spatial_patterns.items()}
    assert set(kinds) == {"disc", "gradient"}
    disc = atlas.spatial_patterns[kinds["disc"]]
    assert disc["dataset"] == spatial.uns["dataset"]["name"]
    distance = np.linalg.norm(coords - np.asarray(disc["center"]), axis=1)
    rho_disc = spearmanr(module_score(atlas, spatial, kinds["disc"]), distance).statistic
    assert rho_disc < -0.5
    rho_gradient = spearmanr(
        module_score(atlas, spatial, kinds["gradient"]), coords[:, 0]
    ).statistic
    assert rho_gradient > 0.7
    unpatterned = [
        m
        for m, ds in atlas.module_datasets.items()
        if spatial.uns["dataset"]["name"] in ds and m not in atlas.spatial_patterns
    ]
    assert unpatterned
    for module in unpatterned:
        score = module_score(atlas, spatial, module)
        assert abs(spearmanr(score, coords[:, 0]).statistic) < 0.3
        assert abs(spearmanr(score, distance).statistic) < 0.3


# ------------------------------------------------------------------------- config


def test_small_custom_config():
    base = SimulationConfig()
    config = SimulationConfig(
        n_genes=800,
        n_ubiquitous=150,
        datasets=base.datasets[:2],
        modules=(ModuleSpec("A", 20, (base.datasets[0].name, base.datasets[1].name)),),
    )
    small = simulate_atlas(seed=5, config=config)
    assert len(small.datasets) == 2
    assert list(small.modules) == ["A"] and len(small.modules["A"]) == 20


def test_config_rejects_unknown_module_dataset():
    with pytest.raises(ValueError, match="unknown datasets"):
        SimulationConfig(modules=(ModuleSpec("X", 20, ("no_such_dataset",)),))


# -------------------------------------------------------------------------- writing


def read_gmt(path) -> dict[str, list[str]]:
    out = {}
    for line in path.read_text().splitlines():
        name, _description, *genes = line.split("\t")
        out[name] = genes
    return out


def test_write_round_trip_leaves_no_temp_files(atlas, tmp_path):
    folder = tmp_path / "atlas"
    files = write_simulated_atlas(atlas, folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in files)
    h5ads = [p for p in files if p.suffix == ".h5ad"]
    assert [p.stem for p in h5ads] == atlas.names
    for path, original in zip(h5ads, atlas.datasets, strict=True):
        back = ad.read_h5ad(path)
        assert (sp.csr_matrix(back.X) != original.X).nnz == 0
        assert list(back.var_names) == list(original.var_names)
        assert dict(back.uns["dataset"]) == original.uns["dataset"]
        assert bool(back.uns["simulated"])
        if "spatial" in original.obsm:
            np.testing.assert_array_equal(back.obsm["spatial"], original.obsm["spatial"])
    table = pd.read_csv(folder / "orthologs.tsv", sep="\t")
    pd.testing.assert_frame_equal(table, atlas.orthologs, check_dtype=False)
    assert len(load_ortholog_table(folder / "orthologs.tsv")) > 0
    assert read_gmt(folder / "planted_modules.gmt") == atlas.modules


def test_written_atlas_files_are_readable_by_others(atlas, tmp_path):
    """One atomic writer (storage.atomic_path): files get the umask's mode, not mkstemp's 0600."""
    mask = os.umask(0o022)
    try:
        paths = write_simulated_atlas(atlas, tmp_path / "atlas")
    finally:
        os.umask(mask)
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in paths), [
        oct(p.stat().st_mode) for p in paths
    ]
    assert not [p for p in (tmp_path / "atlas").iterdir() if p.name.startswith(".")]


def test_scaled_atlas_repeats_the_datasets_as_batches_with_their_modules():
    from musegnn_core.data.simulate import SimulationConfig, scaled_config

    assert scaled_config() == SimulationConfig()
    config = scaled_config(14, n_cells=40, n_genes=1500)
    names = [d.name for d in config.datasets]
    assert len(names) == len(set(names)) == 14 and config.n_genes == 1500
    assert {d.n_cells for d in config.datasets} == {40}
    assert names[6] == "sim_scrna_human_blood_a_r2" and names[12] == "sim_scrna_human_blood_a_r3"
    by_name = {m.name: m.datasets for m in config.modules}
    assert set(by_name["M04_blood_a_only"]) == {names[0], names[6], names[12]}
    atlas = simulate_atlas(seed=1, config=config)
    assert atlas.names == names
    assert all(a.n_obs == 40 for a in atlas.datasets)
    # A batch is new data of the same kind, not a copy.
    first, again = atlas.datasets[0], atlas.datasets[6]
    assert first.uns["dataset"]["tissue"] == again.uns["dataset"]["tissue"]
    assert not np.array_equal(first.X.toarray(), again.X.toarray())
    # Fewer than the six: modules active in none of them are dropped.
    two = scaled_config(2)
    assert [d.name for d in two.datasets] == names[:2]
    assert all(set(m.datasets) <= set(names[:2]) and m.datasets for m in two.modules)
    with pytest.raises(ValueError, match="at least one dataset"):
        scaled_config(0)

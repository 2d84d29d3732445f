"""Small synthetic count data written in each supported format, for fast tests."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp


def make_counts(n_cells: int = 60, n_genes: int = 40, seed: int = 0, species: str = "human"):
    """Negative-binomial counts with gene symbols in the species' convention."""
    rng = np.random.default_rng(seed)
    means = rng.lognormal(0.0, 1.0, n_genes)
    counts = rng.negative_binomial(2, 2 / (2 + means[None, :]), size=(n_cells, n_genes))
    counts[:, 0] += 1  # no all-zero cells
    genes = [f"GENE{i}" if species == "human" else f"Gene{i}" for i in range(n_genes)]
    letters = np.array(list("ACGT"))
    cells = ["".join(rng.choice(letters, 16)) + "-1" for _ in range(n_cells)]
    return ad.AnnData(
        X=sp.csr_matrix(counts.astype(np.float32)),
        obs=pd.DataFrame(index=cells),
        var=pd.DataFrame(index=genes),
    )


def write_h5ad(adata: ad.AnnData, path: Path, meta: dict | None = None) -> Path:
    adata = adata.copy()
    if meta:
        adata.uns["dataset"] = meta
    adata.write_h5ad(path)
    return path


def write_10x_mtx(
    adata: ad.AnnData, folder: Path, version: str = "v3", extra_feature=False
) -> Path:
    """A Cell Ranger folder: v3 gzipped with features.tsv.gz, v2 plain with genes.tsv."""
    folder.mkdir(parents=True, exist_ok=True)
    genes_by_cells = sp.coo_matrix(adata.X.T)
    ids = [f"ENSG{i:011d}" for i in range(adata.n_vars)]
    names = list(adata.var_names)
    if version == "v3":
        rows = [f"{i}\t{n}\tGene Expression" for i, n in zip(ids, names, strict=True)]
        if extra_feature:
            rows.append("CD3_TotalSeqB\tCD3\tAntibody Capture")
            extra = sp.coo_matrix(np.ones((1, adata.n_obs)))
            genes_by_cells = sp.vstack([genes_by_cells, extra]).tocoo()
        with gzip.open(folder / "features.tsv.gz", "wt") as h:
            h.write("\n".join(rows) + "\n")
        with gzip.open(folder / "barcodes.tsv.gz", "wt") as h:
            h.write("\n".join(adata.obs_names) + "\n")
        with gzip.open(folder / "matrix.mtx.gz", "wb") as h:
            scipy.io.mmwrite(h, genes_by_cells.astype(np.int64))
    else:
        (folder / "genes.tsv").write_text(
            "\n".join(f"{i}\t{n}" for i, n in zip(ids, names, strict=True)) + "\n"
        )
        (folder / "barcodes.tsv").write_text("\n".join(adata.obs_names) + "\n")
        scipy.io.mmwrite(folder / "matrix.mtx", genes_by_cells.astype(np.int64))
    return folder


def write_10x_h5(adata: ad.AnnData, path: Path, version: str = "v3") -> Path:
    genes_by_cells = sp.csc_matrix(adata.X.T.astype(np.int32))
    ids = np.array([f"ENSG{i:011d}" for i in range(adata.n_vars)], dtype="S")
    names = np.array(list(adata.var_names), dtype="S")
    with h5py.File(path, "w") as handle:
        group = handle.create_group("matrix" if version == "v3" else "GRCh38")
        group["data"] = genes_by_cells.data
        group["indices"] = genes_by_cells.indices
        group["indptr"] = genes_by_cells.indptr
        group["shape"] = np.array(genes_by_cells.shape, dtype=np.int32)
        group["barcodes"] = np.array(list(adata.obs_names), dtype="S")
        if version == "v3":
            feats = group.create_group("features")
            feats["id"], feats["name"] = ids, names
            feats["feature_type"] = np.array([b"Gene Expression"] * adata.n_vars)
        else:
            group["genes"], group["gene_names"] = ids, names
    return path


def write_table(adata: ad.AnnData, path: Path, genes_by_cells: bool = True) -> Path:
    frame = pd.DataFrame(adata.X.toarray(), index=adata.obs_names, columns=adata.var_names)
    frame = frame.T if genes_by_cells else frame
    frame.to_csv(path, sep="," if ".csv" in path.name else "\t")
    return path


@dataclass
class FakeGraph:
    """Stand-in for ``GeneGraph`` with the attributes analysis code reads."""

    dataset: str
    genes: list[str]
    adjacency: sp.csr_matrix
    features: np.ndarray
    info: dict = field(default_factory=dict)


def open_app_page(page: str | None = None):
    """The app in Streamlit's AppTest, on ``page`` (a script path such as
    "pages/1_Data.py"), checked to have rendered without an exception."""
    from streamlit.testing.v1 import AppTest

    from musegnn_core.paths import PROJECT_ROOT

    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120).run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at

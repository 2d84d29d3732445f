"""Readers for the count formats users bring: h5ad, 10x folders, 10x h5, CSV/TSV tables.

Every reader returns cells x genes as an AnnData with a CSR matrix and raises
:class:`InputFileError` with a readable reason when a file cannot be parsed. No
reader unpickles anything: h5ad and 10x h5 go through HDF5, tables through
pandas' text parser, and formats that would need pickle (``.pkl``, R's ``.rds``)
are refused up front. HDF5 files are first read by a throw-away process
(:mod:`.hdf5_probe`), because a damaged one can hang or crash the HDF5 library, and
sparse matrices are checked index by index before any arithmetic touches them.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

from ..errors import InputFileError
from .hdf5_probe import check_hdf5

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")
ORIENTATIONS = ("auto", "cells-by-genes", "genes-by-cells")
_REFUSED = {
    ".pkl": "a Python pickle",
    ".pickle": "a Python pickle",
    ".rds": "an R object",
    ".rda": "an R object",
    ".rdata": "an R object",
    ".loom": "a loom file",
    ".xlsx": "an Excel workbook",
    ".xls": "an Excel workbook",
    ".zip": "a zip archive",
}
_BARCODE_RE = re.compile(r"^[ACGTN]{8,}(-\d+)?$")


@dataclass
class ReadResult:
    """Counts as read from disk, before validation."""

    adata: ad.AnnData
    source_format: str
    notes: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for double in (".csv.gz", ".tsv.gz", ".txt.gz", ".mtx.gz"):
        if name.endswith(double):
            return double
    return path.suffix.lower()


def _first_bytes(path: Path, n: int = 8) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(n)


def _find_10x_folder(path: Path) -> Path | None:
    """The folder holding matrix.mtx(.gz), looking one or two levels down (Cell Ranger nests it)."""
    candidates = [
        path,
        *sorted(p for p in path.glob("*") if p.is_dir()),
        *sorted(p for p in path.glob("*/*") if p.is_dir()),
    ]
    for folder in candidates:
        if (folder / "matrix.mtx").exists() or (folder / "matrix.mtx.gz").exists():
            return folder
    return None


def detect_format(path: str | Path) -> str:
    """One of ``h5ad``, ``10x-mtx``, ``10x-h5``, ``table``; raises InputFileError otherwise."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path} does not exist.")
    if not path.is_dir():
        _require_regular(path)
    if path.is_dir():
        if _find_10x_folder(path) is None:
            raise InputFileError(
                f"{path} is a folder but holds no 10x matrix (matrix.mtx or matrix.mtx.gz with "
                "features.tsv/genes.tsv and barcodes.tsv)."
            )
        return "10x-mtx"
    suffix = _suffix(path)
    if suffix in _REFUSED:
        raise InputFileError(
            f"{path.name} is {_REFUSED[suffix]}, which MuSe-GNN Studio does not read "
            "(pickled and R objects can run code when loaded). Export it as .h5ad, a 10x folder "
            "or a CSV/TSV count table."
        )
    if path.stat().st_size == 0:
        raise InputFileError(f"{path.name} is empty (0 bytes).")
    if suffix == ".mtx" or suffix == ".mtx.gz":
        return "10x-mtx"
    if suffix == ".h5ad":
        return "h5ad"
    if suffix in (".h5", ".hdf5"):
        return "10x-h5"
    if suffix in TABLE_SUFFIXES:
        return "table"
    if _first_bytes(path) == HDF5_SIGNATURE:
        return "h5ad"
    raise InputFileError(
        f"Cannot tell the format of {path.name}: use .h5ad, .h5 (10x), a 10x folder, "
        "or a .csv/.tsv count table."
    )


def _require_regular(path: Path) -> None:
    """Refuse pipes, sockets and devices: reading ``/dev/stdin`` or a FIFO would wait forever."""
    if not path.is_file():
        raise InputFileError(
            f"{path.name} is not a regular file (a pipe, socket or device); give a file or folder."
        )


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _require_hdf5(path: Path, what: str) -> None:
    if _first_bytes(path) != HDF5_SIGNATURE:
        raise InputFileError(f"{path.name} is not an HDF5 file, so it cannot be {what}.")
    check_hdf5(path)


def _checked_sparse(matrix, path: Path):
    """``matrix`` as CSR after a full index check.

    scipy trusts the index arrays it is given; out-of-range indices from a damaged file
    would make the first sum read outside memory (a segfault found by fuzzing).
    """
    if sp.issparse(matrix):
        try:
            matrix.check_format(full_check=True)
        except (ValueError, TypeError) as exc:
            raise InputFileError(
                f"The count matrix in {path.name} is inconsistent ({_reason(exc)}); the file "
                "is damaged. Export it again."
            ) from exc
    try:
        matrix = sp.csr_matrix(matrix)
    except (ValueError, TypeError) as exc:
        raise InputFileError(
            f"The expression matrix in {path.name} is not a numeric matrix ({_reason(exc)})."
        ) from exc
    if not np.issubdtype(matrix.dtype, np.number) or np.issubdtype(
        matrix.dtype, np.complexfloating
    ):
        raise InputFileError(
            f"The expression matrix in {path.name} holds {matrix.dtype} values, not counts."
        )
    return matrix


def _spatial_coordinates(value, path: Path) -> np.ndarray:
    """obsm['spatial'] as an (n, 2) float array of finite numbers."""
    try:
        coords = np.asarray(value, dtype=float)
    except (ValueError, TypeError) as exc:
        raise InputFileError(
            f"obsm['spatial'] in {path.name} does not hold numeric coordinates ({_reason(exc)})."
        ) from exc
    if coords.ndim != 2 or coords.shape[1] < 2:
        raise InputFileError(
            f"obsm['spatial'] in {path.name} has shape {coords.shape}; spot coordinates need "
            "two columns (x, y)."
        )
    coords = coords[:, :2]
    if not np.all(np.isfinite(coords)):
        raise InputFileError(
            f"obsm['spatial'] in {path.name} contains missing or infinite coordinates."
        )
    return coords


# --------------------------------------------------------------------------- h5ad


def _is_count_matrix(matrix) -> bool:
    values = matrix.data if sp.issparse(matrix) else np.asarray(matrix)
    if values.size == 0:
        return False
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.number) or np.issubdtype(
        values.dtype, np.complexfloating
    ):
        return False
    return bool(
        np.all(np.isfinite(values)) and values.min() >= 0 and np.all(values == np.round(values))
    )


def read_h5ad(path: str | Path) -> ReadResult:
    """Read an AnnData file; if ``X`` is normalised, fall back to ``layers['counts']`` or ``raw``."""
    path = Path(path)
    _require_hdf5(path, "read as .h5ad")
    try:
        adata = ad.read_h5ad(path)
    except Exception as exc:  # any parse failure of a user file is an input problem
        raise InputFileError(
            f"Could not read {path.name} as .h5ad ({_reason(exc)}). The file may be truncated "
            "or not an AnnData file."
        ) from exc
    notes: list[str] = []
    matrix, var = adata.X, adata.var
    if matrix is None:
        raise InputFileError(f"{path.name} has no expression matrix (X is empty).")
    if not _is_count_matrix(matrix):
        if "counts" in adata.layers and _is_count_matrix(adata.layers["counts"]):
            matrix = adata.layers["counts"]
            notes.append("X is not raw counts; used layers['counts'] instead.")
        elif adata.raw is not None and _is_count_matrix(adata.raw.X):
            matrix, var = adata.raw.X, adata.raw.var
            notes.append("X is not raw counts; used raw.X instead.")
    out = ad.AnnData(
        X=_checked_sparse(matrix, path),
        obs=adata.obs.copy(),
        var=pd.DataFrame(index=var.index.astype(str)),
    )
    for column in var.columns:
        if column in ("gene_ids", "gene_id", "feature_types", "ensembl_id"):
            out.var[column] = np.asarray(var[column]).astype(str)
    if "spatial" in adata.obsm:
        out.obsm["spatial"] = _spatial_coordinates(adata.obsm["spatial"], path)
    metadata = adata.uns.get("dataset", {})
    metadata = {str(k): str(v) for k, v in metadata.items()} if isinstance(metadata, dict) else {}
    if str(adata.uns.get("simulated", False)) == "True":
        metadata["simulated"] = "True"
    return ReadResult(out, "h5ad", notes, metadata)


# ------------------------------------------------------------------------ 10x mtx


def _pick(folder: Path, *names: str) -> Path | None:
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.exists():
                return candidate
    return None


def _read_tsv(path: Path, what: str) -> pd.DataFrame:
    try:
        return pd.read_csv(path, sep="\t", header=None, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as exc:
        raise InputFileError(f"{path.name} ({what}) is empty.") from exc
    except Exception as exc:
        raise InputFileError(f"Could not read {path.name} ({what}): {_reason(exc)}.") from exc


def _gene_expression_only(matrix: sp.csr_matrix, features: pd.DataFrame, notes: list[str]):
    """Keep 'Gene Expression' rows of a v3 feature table (antibody capture etc. are not genes)."""
    if features.shape[1] < 3:
        return matrix, features
    keep = (features[2] == "Gene Expression").to_numpy()
    if keep.all() or not keep.any():
        return matrix, features
    notes.append(f"Dropped {int((~keep).sum())} non-gene features (e.g. antibody capture).")
    return matrix[:, keep], features[keep]


def _make_anndata_from_10x(matrix_cells_by_genes, features: pd.DataFrame, barcodes, notes):
    matrix, features = _gene_expression_only(sp.csr_matrix(matrix_cells_by_genes), features, notes)
    symbols = features[1] if features.shape[1] > 1 else features[0]
    var = pd.DataFrame(index=pd.Index(symbols.astype(str).to_numpy(), name=None))
    if features.shape[1] > 1:
        var["gene_ids"] = features[0].astype(str).to_numpy()
    obs = pd.DataFrame(index=pd.Index(np.asarray(barcodes).astype(str)))
    return ad.AnnData(X=matrix, obs=obs, var=var)


def read_10x_mtx(path: str | Path) -> ReadResult:
    """Read a Cell Ranger matrix folder, v2 (genes.tsv) or v3 (features.tsv.gz)."""
    path = Path(path)
    folder = path.parent if path.is_file() else _find_10x_folder(path)
    if folder is None:
        raise InputFileError(f"No matrix.mtx(.gz) found in {path}.")
    matrix_path = _pick(folder, "matrix.mtx")
    features_path = _pick(folder, "features.tsv", "genes.tsv")
    barcodes_path = _pick(folder, "barcodes.tsv")
    missing = [
        n
        for n, p in (("features.tsv/genes.tsv", features_path), ("barcodes.tsv", barcodes_path))
        if p is None
    ]
    if matrix_path is None or missing:
        raise InputFileError(f"The 10x folder {folder} lacks {', '.join(missing) or 'matrix.mtx'}.")
    for part in (matrix_path, features_path, barcodes_path):
        _require_regular(part)
    try:
        with (
            gzip.open(matrix_path, "rb")
            if matrix_path.name.endswith(".gz")
            else open(matrix_path, "rb")
        ) as handle:
            genes_by_cells = scipy.io.mmread(handle)
    except Exception as exc:
        raise InputFileError(
            f"Could not read {matrix_path.name} ({_reason(exc)}); it may be truncated."
        ) from exc
    features = _read_tsv(features_path, "gene list")
    barcodes = _read_tsv(barcodes_path, "barcodes")[0].to_numpy()
    n_genes, n_cells = genes_by_cells.shape
    if len(features) != n_genes or len(barcodes) != n_cells:
        raise InputFileError(
            f"{matrix_path.name} is {n_genes} genes x {n_cells} cells, but {features_path.name} "
            f"lists {len(features)} genes and {barcodes_path.name} {len(barcodes)} barcodes: "
            "the files come from different runs or one is truncated."
        )
    notes: list[str] = []
    version = "v3" if features_path.name.startswith("features") else "v2"
    adata = _make_anndata_from_10x(sp.csr_matrix(genes_by_cells).T, features, barcodes, notes)
    return ReadResult(adata, f"10x-mtx ({version})", notes)


# ------------------------------------------------------------------------- 10x h5


def _decode(values) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)


def read_10x_h5(path: str | Path) -> ReadResult:
    """Read a Cell Ranger ``.h5`` (v3 ``/matrix`` layout or v2 per-genome layout) with h5py."""
    import h5py

    path = Path(path)
    _require_hdf5(path, "read as a 10x .h5 file")
    try:
        with h5py.File(path, "r") as handle:
            if "matrix" in handle:
                group = handle["matrix"]
                feats = group["features"]
                features = pd.DataFrame({0: _decode(feats["id"][:]), 1: _decode(feats["name"][:])})
                if "feature_type" in feats:
                    features[2] = _decode(feats["feature_type"][:])
                version = "v3"
            else:
                genomes = [k for k in handle if isinstance(handle[k], h5py.Group)]
                if len(genomes) != 1:
                    raise InputFileError(
                        f"{path.name} is not a 10x .h5 file with one genome "
                        f"(found groups: {', '.join(genomes) or 'none'})."
                    )
                group = handle[genomes[0]]
                features = pd.DataFrame(
                    {0: _decode(group["genes"][:]), 1: _decode(group["gene_names"][:])}
                )
                version = "v2"
            shape = tuple(int(x) for x in group["shape"][:])
            genes_by_cells = _checked_sparse(
                sp.csc_matrix(
                    (group["data"][:], group["indices"][:], group["indptr"][:]), shape=shape
                ),
                path,
            )
            barcodes = _decode(group["barcodes"][:])
    except InputFileError:
        raise
    except Exception as exc:
        raise InputFileError(
            f"Could not read {path.name} as a 10x .h5 file ({_reason(exc)}); it may be truncated "
            "or not from Cell Ranger. For AnnData files use the .h5ad extension."
        ) from exc
    notes: list[str] = []
    adata = _make_anndata_from_10x(genes_by_cells.T, features, barcodes, notes)
    return ReadResult(adata, f"10x-h5 ({version})", notes)


# -------------------------------------------------------------------------- table


def _looks_like_barcodes(labels: pd.Index) -> float:
    sample = labels[:200].astype(str)
    return float(np.mean([bool(_BARCODE_RE.match(s)) for s in sample])) if len(sample) else 0.0


def guess_orientation(table: pd.DataFrame) -> tuple[str, str]:
    """Guess whether rows are cells or genes. Returns (orientation, why)."""
    rows, cols = _looks_like_barcodes(table.index), _looks_like_barcodes(table.columns)
    if rows > 0.8 > cols:
        return "cells-by-genes", "row labels look like cell barcodes"
    if cols > 0.8 > rows:
        return "genes-by-cells", "column labels look like cell barcodes"
    # Count tables almost always list more genes than cells.
    if table.shape[0] >= table.shape[1]:
        return "genes-by-cells", "there are more rows than columns"
    return "cells-by-genes", "there are more columns than rows"


def read_count_table(path: str | Path, orientation: str = "auto") -> ReadResult:
    """Read a CSV/TSV count table with labels in the first row and column."""
    path = Path(path)
    if orientation not in ORIENTATIONS:
        raise InputFileError(f"Unknown orientation {orientation!r}: use {', '.join(ORIENTATIONS)}.")
    sep = "," if ".csv" in path.name.lower() else "\t"
    try:
        table = pd.read_csv(path, sep=sep, index_col=0)
    except pd.errors.EmptyDataError as exc:
        raise InputFileError(f"{path.name} holds no table (it is empty).") from exc
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{path.name} is not a text table (binary content).") from exc
    except Exception as exc:
        raise InputFileError(f"Could not parse {path.name} as a table: {_reason(exc)}.") from exc
    if table.shape[0] == 0 or table.shape[1] == 0:
        raise InputFileError(
            f"{path.name} has no data rows or columns. Expected gene/cell labels in the first "
            f"column and first row, separated by {'commas' if sep == ',' else 'tabs'}."
        )
    non_numeric = [
        str(c) for c, dt in table.dtypes.items() if not pd.api.types.is_numeric_dtype(dt)
    ]
    if non_numeric:
        raise InputFileError(
            f"{path.name} has non-numeric columns ({', '.join(non_numeric[:3])}"
            f"{'...' if len(non_numeric) > 3 else ''}): a count table holds only numbers "
            "besides its first column and header."
        )
    notes: list[str] = []
    if orientation == "auto":
        orientation, why = guess_orientation(table)
        notes.append(
            f"Read as {orientation.replace('-', ' ')} because {why}; "
            "pass the orientation explicitly if that is wrong."
        )
    if orientation == "genes-by-cells":
        table = table.T
    matrix = sp.csr_matrix(table.to_numpy(dtype=np.float64))
    adata = ad.AnnData(
        X=matrix,
        obs=pd.DataFrame(index=table.index.astype(str)),
        var=pd.DataFrame(index=table.columns.astype(str)),
    )
    return ReadResult(adata, f"table ({orientation})", notes)


def read_coordinates(path: str | Path, cell_names: pd.Index) -> np.ndarray:
    """Spot coordinates from a CSV/TSV: first column = cell/spot name, then x and y."""
    path = Path(path)
    if path.exists():
        _require_regular(path)
    sep = "," if ".csv" in path.name.lower() else "\t"
    try:
        table = pd.read_csv(path, sep=sep, index_col=0)
    except Exception as exc:
        raise InputFileError(
            f"Could not read coordinates from {path.name}: {_reason(exc)}."
        ) from exc
    numeric = table.select_dtypes("number")
    columns = [c for c in ("x", "y") if c in numeric.columns] or list(numeric.columns[:2])
    if len(columns) < 2:
        raise InputFileError(f"{path.name} needs two numeric coordinate columns (x, y).")
    table.index = table.index.astype(str)
    missing = cell_names.difference(table.index)
    if len(missing):
        raise InputFileError(
            f"{path.name} has no coordinates for {len(missing)} of {len(cell_names)} spots "
            f"(e.g. {missing[0]}); its first column must hold the spot names of the count matrix."
        )
    coords = numeric.loc[cell_names, columns].to_numpy(dtype=float)
    if not np.all(np.isfinite(coords)):
        raise InputFileError(f"{path.name} contains missing or infinite coordinates.")
    return coords


READERS = {"h5ad": read_h5ad, "10x-mtx": read_10x_mtx, "10x-h5": read_10x_h5}


def read_counts(path: str | Path, orientation: str = "auto") -> ReadResult:
    """Detect the format of ``path`` and read it as cells x genes."""
    fmt = detect_format(path)
    if fmt == "table":
        return read_count_table(path, orientation)
    return READERS[fmt](path)


KNOWN_SUFFIXES = (".h5ad", ".h5", ".hdf5", ".mtx", ".mtx.gz", *TABLE_SUFFIXES)


def safe_upload_name(filename: str) -> str:
    """A file name for an upload that cannot leave its folder and keeps a known suffix.

    Browsers may send any string as a file name (``../../x``, control characters);
    only a sanitised stem and a whitelisted suffix survive.
    """
    from ..metadata import sanitize_name

    base = Path(str(filename).replace("\\", "/")).name
    suffix = _suffix(Path(base.lower()))
    suffix = suffix if suffix in KNOWN_SUFFIXES else ""
    stem = base[: len(base) - len(suffix)] if suffix else base
    return f"{sanitize_name(stem) or 'upload'}{suffix}"

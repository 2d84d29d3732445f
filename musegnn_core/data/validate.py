"""Checks that an imported matrix is a usable raw count matrix.

MuSe-GNN's statistics (Pearson residuals, CS-CORE, SPARK-X) all model raw counts:
normalised, log-transformed or scaled values silently give wrong graphs, so they
are refused with a message that says what was found and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import ValidationError

#: float32 holds every integer up to 2**24 exactly; above that counts are kept as float64.
FLOAT32_EXACT_LIMIT = 2**24


@dataclass(frozen=True)
class ImportLimits:
    """Smallest dataset worth importing: co-expression needs cells, a graph needs genes."""

    min_cells: int = 20
    min_genes: int = 20


def _examples(values, k: int = 3) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:k])
    return shown + ("..." if len(values) > k else "")


def check_values(matrix: sp.csr_matrix, label: str, allow_non_integer: bool) -> list[str]:
    """Refuse NaN/inf and negatives; refuse or round non-integers. Modifies ``matrix.data``."""
    data = matrix.data
    notes: list[str] = []
    bad = ~np.isfinite(data)
    if bad.any():
        raise ValidationError(
            f"{label} contains {int(bad.sum())} missing or infinite values (NaN/inf). "
            "Import the raw count matrix, not a processed one."
        )
    if data.size and data.min() < 0:
        raise ValidationError(
            f"{label} contains negative values (minimum {data.min():g}): these look like "
            "normalised or scaled data. MuSe-GNN needs raw counts."
        )
    fractional = data != np.round(data)
    if fractional.any():
        n_frac = int(fractional.sum())
        if not allow_non_integer:
            raise ValidationError(
                f"{label} has {n_frac} non-integer values (e.g. {data[fractional][0]:g}); raw counts "
                "are integers. If these are estimated counts (e.g. from Salmon or kallisto), "
                "import again allowing non-integer counts to round them."
            )
        np.rint(data, out=data)
        notes.append(
            f"Rounded {n_frac} non-integer values to the nearest integer (allowed by the user); "
            "results rest on these rounded counts."
        )
    return notes


def make_gene_names_unique(adata: ad.AnnData) -> list[str]:
    """Suffix repeated gene symbols (``GENE``, ``GENE-1``...) and report which were repeated."""
    names = pd.Index(adata.var_names.astype(str))
    blank = (names.str.strip() == "") | names.isin(["nan", "NaN", "None"])
    if blank.any():
        names = pd.Index(np.where(blank, [f"unnamed-{i}" for i in range(len(names))], names))
    adata.var_names = names
    notes = (
        [f"{int(blank.sum())} genes had no name and were called unnamed-<index>."]
        if blank.any()
        else []
    )
    duplicated = names[names.duplicated()].unique()
    if len(duplicated):
        adata.var_names_make_unique()
        notes.append(
            f"{len(duplicated)} gene names occurred more than once (e.g. {_examples(duplicated)}); "
            "repeats were renamed NAME-1, NAME-2..."
        )
    if adata.obs_names.duplicated().any():
        adata.obs_names_make_unique()
        notes.append("Repeated cell names were made unique.")
    return notes


def drop_empty_cells(adata: ad.AnnData) -> tuple[ad.AnnData, list[str]]:
    totals = np.asarray(adata.X.sum(axis=1)).ravel()
    empty = totals == 0
    notes = []
    if empty.any():
        notes.append(f"Removed {int(empty.sum())} cells with no counts at all.")
        adata = adata[~empty].copy()
    zero_genes = int((np.asarray(adata.X.sum(axis=0)).ravel() == 0).sum())
    if zero_genes:
        notes.append(f"{zero_genes} genes have no counts in any cell (kept; graphs ignore them).")
    return adata, notes


def validate_counts(
    adata: ad.AnnData,
    label: str,
    *,
    allow_non_integer: bool = False,
    limits: ImportLimits = ImportLimits(),
) -> tuple[ad.AnnData, list[str], bool]:
    """Validate and clean a cells x genes count AnnData.

    Returns the cleaned AnnData (CSR, float32 unless counts exceed its exact range),
    the notes to show the user, and whether non-integer values were rounded.
    """
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise ValidationError(f"{label} is empty ({adata.n_obs} cells x {adata.n_vars} genes).")
    matrix = sp.csr_matrix(adata.X, dtype=np.float64)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    if matrix.nnz == 0:
        raise ValidationError(f"{label} contains only zeros: there are no counts to analyse.")
    notes = check_values(matrix, label, allow_non_integer)
    rounded = bool(notes)
    matrix.eliminate_zeros()
    dtype = np.float32 if matrix.data.max() < FLOAT32_EXACT_LIMIT else np.float64
    adata = ad.AnnData(X=matrix.astype(dtype), obs=adata.obs, var=adata.var, obsm=dict(adata.obsm))
    notes += make_gene_names_unique(adata)
    adata, empty_notes = drop_empty_cells(adata)
    notes += empty_notes
    if adata.n_obs < limits.min_cells:
        raise ValidationError(
            f"{label} has only {adata.n_obs} cells with counts; at least {limits.min_cells} are "
            "needed to estimate gene co-expression."
        )
    if adata.n_vars < limits.min_genes:
        raise ValidationError(
            f"{label} has only {adata.n_vars} genes; at least {limits.min_genes} are needed to "
            "build a gene graph. Check that rows and columns are not swapped."
        )
    expressed = int((adata.X.getnnz(axis=0) > 0).sum())
    if expressed < limits.min_genes:
        raise ValidationError(
            f"{label} has only {expressed} genes with any count (of {adata.n_vars}); at least "
            f"{limits.min_genes} are needed to build a gene graph."
        )
    return adata, notes, rounded

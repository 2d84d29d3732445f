"""Raw-count validation: every kind of bad matrix is refused or cleaned with a message."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from musegnn_core.data.validate import ImportLimits, validate_counts
from musegnn_core.errors import ValidationError
from tests.factories import make_counts


def with_values(adata, row, col, value):
    dense = adata.X.toarray().astype(np.float64)
    dense[row, col] = value
    adata.X = sp.csr_matrix(dense)
    return adata


@pytest.mark.parametrize(
    ("value", "message"),
    [(np.nan, "NaN"), (np.inf, "infinite"), (-3.0, "negative"), (2.5, "non-integer")],
)
def test_bad_values_are_refused(value, message):
    with pytest.raises(ValidationError, match=message):
        validate_counts(with_values(make_counts(), 3, 4, value), "x")


def test_non_integer_values_rounded_when_allowed():
    adata = with_values(make_counts(), 3, 4, 2.6)
    cleaned, notes, rounded = validate_counts(adata, "x", allow_non_integer=True)
    assert rounded
    assert cleaned.X[3, 4] == 3
    assert any("Rounded 1 non-integer" in n for n in notes)


def test_empty_and_all_zero_matrices():
    adata = make_counts()
    with pytest.raises(ValidationError, match="empty"):
        validate_counts(adata[:0].copy(), "x")
    adata.X = sp.csr_matrix(adata.shape, dtype=np.float32)
    with pytest.raises(ValidationError, match="only zeros"):
        validate_counts(adata, "x")


def test_too_few_cells_or_genes():
    with pytest.raises(ValidationError, match="only 10 cells"):
        validate_counts(make_counts(n_cells=10), "x")
    with pytest.raises(ValidationError, match="only 5 genes"):
        validate_counts(make_counts(n_genes=5), "x")
    cleaned, _, _ = validate_counts(make_counts(n_cells=10), "x", limits=ImportLimits(5, 5))
    assert cleaned.n_obs == 10


def test_duplicate_gene_names_made_unique_and_reported():
    adata = make_counts()
    names = list(adata.var_names)
    names[1] = names[2] = names[0]
    adata.var_names = names
    cleaned, notes, _ = validate_counts(adata, "x")
    assert cleaned.var_names.is_unique
    assert {"GENE0", "GENE0-1", "GENE0-2"} <= set(cleaned.var_names)
    assert any("1 gene names occurred more than once" in n for n in notes)


def test_all_zero_cells_removed_zero_genes_kept():
    adata = make_counts()
    dense = adata.X.toarray()
    dense[[0, 5], :] = 0
    dense[:, 7] = 0
    adata.X = sp.csr_matrix(dense)
    cleaned, notes, _ = validate_counts(adata, "x")
    assert cleaned.n_obs == adata.n_obs - 2
    assert cleaned.n_vars == adata.n_vars
    assert any("Removed 2 cells" in n for n in notes)
    assert any("1 genes have no counts" in n for n in notes)


def test_output_is_csr_float32_counts():
    cleaned, notes, rounded = validate_counts(make_counts(), "x")
    assert sp.isspmatrix_csr(cleaned.X) and cleaned.X.dtype == np.float32
    assert not rounded and notes == []

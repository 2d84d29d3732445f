"""Each import format reads back the same counts, and broken files give clear errors."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest

from musegnn_core.data.readers import (
    detect_format,
    read_coordinates,
    read_counts,
    safe_upload_name,
)
from musegnn_core.errors import InputFileError
from tests.factories import make_counts, write_10x_h5, write_10x_mtx, write_h5ad, write_table


def assert_same_counts(result, expected):
    assert result.adata.shape == expected.shape
    assert list(result.adata.var_names) == list(expected.var_names)
    assert list(result.adata.obs_names) == list(expected.obs_names)
    np.testing.assert_array_equal(result.adata.X.toarray(), expected.X.toarray())


def test_h5ad_round_trip_keeps_metadata_and_coordinates(tmp_path):
    adata = make_counts()
    adata.obsm["spatial"] = np.arange(adata.n_obs * 2, dtype=float).reshape(-1, 2)
    path = write_h5ad(adata, tmp_path / "a.h5ad", {"species": "mouse", "tissue": "brain"})
    result = read_counts(path)
    assert_same_counts(result, adata)
    assert result.metadata == {"species": "mouse", "tissue": "brain"}
    np.testing.assert_array_equal(result.adata.obsm["spatial"], adata.obsm["spatial"])


def test_h5ad_with_normalised_x_falls_back_to_counts_layer(tmp_path):
    adata = make_counts()
    adata.layers["counts"] = adata.X.copy()
    adata.X = adata.X.multiply(0.37).tocsr()
    result = read_counts(write_h5ad(adata, tmp_path / "n.h5ad"))
    np.testing.assert_array_equal(result.adata.X.toarray(), adata.layers["counts"].toarray())
    assert any("layers['counts']" in n for n in result.notes)


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_10x_folder(tmp_path, version):
    adata = make_counts()
    folder = write_10x_mtx(adata, tmp_path / "tenx", version)
    assert detect_format(folder) == "10x-mtx"
    result = read_counts(folder)
    assert_same_counts(result, adata)
    assert version in result.source_format
    assert result.adata.var["gene_ids"].iloc[0].startswith("ENSG")


def test_10x_folder_found_when_nested_and_antibodies_dropped(tmp_path):
    adata = make_counts()
    write_10x_mtx(adata, tmp_path / "outs" / "filtered_feature_bc_matrix", "v3", extra_feature=True)
    result = read_counts(tmp_path / "outs")
    assert_same_counts(result, adata)
    assert any("non-gene" in n for n in result.notes)


@pytest.mark.parametrize("version", ["v2", "v3"])
def test_10x_h5(tmp_path, version):
    adata = make_counts()
    result = read_counts(write_10x_h5(adata, tmp_path / "m.h5", version))
    assert_same_counts(result, adata)


@pytest.mark.parametrize(
    ("name", "genes_by_cells"),
    [("t.csv", True), ("t.tsv", False), ("t.csv.gz", True), ("t.txt", True)],
)
def test_count_tables_detect_orientation(tmp_path, name, genes_by_cells):
    adata = make_counts()
    result = read_counts(write_table(adata, tmp_path / name, genes_by_cells))
    assert_same_counts(result, adata)
    assert any("barcodes" in n for n in result.notes)


def test_table_orientation_given_explicitly(tmp_path):
    # 60 cells x 25 genes, cells as rows, no barcode-like names: the size rule guesses
    # wrong, so the user states the orientation.
    adata = make_counts(n_cells=60, n_genes=25)
    adata.obs_names = [f"cell{i}" for i in range(60)]
    path = write_table(adata, tmp_path / "t.csv", genes_by_cells=False)
    guessed = read_counts(path)
    assert guessed.adata.shape == (25, 60)
    assert any("pass the orientation" in n for n in guessed.notes)
    assert_same_counts(read_counts(path, orientation="cells-by-genes"), adata)


def test_coordinates_file(tmp_path):
    adata = make_counts()
    coords = tmp_path / "xy.csv"
    rows = [f"{c},{i},{2 * i}" for i, c in enumerate(adata.obs_names)]
    coords.write_text("spot,x,y\n" + "\n".join(reversed(rows)) + "\n")
    xy = read_coordinates(coords, adata.obs_names)
    np.testing.assert_array_equal(xy[:, 0], np.arange(adata.n_obs))
    coords.write_text("spot,x,y\nnot-a-spot,1,2\n")
    with pytest.raises(InputFileError, match="no coordinates for"):
        read_coordinates(coords, adata.obs_names)


@pytest.mark.parametrize(
    ("filename", "content", "message"),
    [
        ("empty.h5ad", b"", "empty"),
        ("fake.h5ad", b"this is not hdf5 at all", "not an HDF5 file"),
        ("x.pkl", pickle.dumps({"a": 1}), "pickle"),
        ("x.rds", b"RDX2", "R object"),
        ("x.json", b"{}", "Cannot tell the format"),
        ("e.csv", b"\n", "no table"),
        ("bin.csv", bytes(range(256)) * 4, "table"),
        ("words.csv", b"gene,c1,c2\nA,x,y\nB,1,2\n", "non-numeric"),
        ("fake.h5", b"nope", "not an HDF5 file"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, filename, content, message):
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(InputFileError, match=message):
        read_counts(path)


def test_truncated_files(tmp_path):
    adata = make_counts(200, 80)
    whole = write_h5ad(adata, tmp_path / "whole.h5ad").read_bytes()
    (tmp_path / "cut.h5ad").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputFileError, match="truncated"):
        read_counts(tmp_path / "cut.h5ad")
    folder = write_10x_mtx(adata, tmp_path / "tenx", "v3")
    data = gzip.decompress((folder / "matrix.mtx.gz").read_bytes())
    with gzip.open(folder / "matrix.mtx.gz", "wb") as h:
        h.write(data[: len(data) // 2])
    with pytest.raises(InputFileError):
        read_counts(folder)


def test_10x_files_from_different_runs(tmp_path):
    folder = write_10x_mtx(make_counts(), tmp_path / "tenx", "v2")
    (folder / "barcodes.tsv").write_text("AAAA-1\n")
    with pytest.raises(InputFileError, match="different runs"):
        read_counts(folder)


def test_missing_paths(tmp_path):
    with pytest.raises(InputFileError, match="does not exist"):
        read_counts(tmp_path / "nope.h5ad")
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(InputFileError, match="no 10x matrix"):
        read_counts(tmp_path / "emptydir")


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("../../etc/passwd", "passwd"),
        ("a b.h5ad", "a_b.h5ad"),
        ("X.CSV.GZ", "X.csv.gz"),
        ("..\\..\\win.h5", "win.h5"),
        ("\x00evil.tsv", "evil.tsv"),
        ("", "upload"),
    ],
)
def test_upload_names_cannot_escape(raw, safe):
    assert safe_upload_name(raw) == safe

"""The eight shared atlas datasets and the 10x folder import with correct metadata and shapes."""

from __future__ import annotations

import json

import pandas as pd

from tests.conftest import requires_shared_data
from tests.test_cli import run_cli


@requires_shared_data
def test_cli_imports_the_shared_atlas_and_10x_folder(tmp_path, shared_data):
    ws = tmp_path / "ws"
    files = sorted((shared_data / "atlas").glob("*.h5ad"))
    assert len(files) == 8
    done = run_cli("import", *files, "--workspace", ws)
    assert done.returncode == 0, done.stderr
    done = run_cli(
        "import",
        shared_data / "formats" / "pbmc3k_10x_v3_mtx",
        "--workspace",
        ws,
        "--name",
        "pbmc3k_mtx",
        "--tissue",
        "blood",
        "--technology",
        "10x v3",
    )
    assert done.returncode == 0, done.stderr
    listed = {d["name"]: d for d in json.loads(run_cli("list", "-w", ws, "--json").stdout)}

    expected = pd.read_csv(shared_data / "atlas" / "catalog.csv")
    for row in expected.itertuples():
        got = listed[row.name]
        assert (got["species"], got["tissue"], got["modality"], got["technology"]) == (
            row.species,
            row.tissue,
            row.modality,
            row.technology,
        )
        assert (got["n_cells"], got["n_genes"]) == (row.n_cells, row.n_genes)
        assert got["has_spatial"] == (row.modality == "spatial")

    tenx = listed["pbmc3k_mtx"]
    assert (tenx["n_cells"], tenx["n_genes"]) == (2700, 32738)
    assert (tenx["species"], tenx["modality"], tenx["source_format"]) == (
        "human",
        "scrna",
        "10x-mtx (v3)",
    )

"""Enrichment p-values against a direct hypergeometric computation; nearest genes; CLIs."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy.stats import hypergeom

from musegnn_core.analysis.enrich import enrich_genes, selection_genes
from musegnn_core.analysis.neighbors import gene_instances, nearest_genes
from musegnn_core.errors import ValidationError


def test_enrichment_matches_hypergeometric():
    background = [f"G{i}" for i in range(40)]
    sets = {
        "A": ["G0", "G1", "G2", "G3", "G4", "G5", "NOT_IN_BACKGROUND"],
        "B": ["G10", "G11", "G12", "G0"],
        "C": ["G30", "G31"],
    }
    selection = ["G0", "G1", "G2", "G3", "G20", "G21", "OUTSIDE"]
    table = enrich_genes(selection, sets, background)
    assert set(table["term"]) == {"A", "B"}  # C shares nothing with the selection
    n_background, n_selected = 40, 6  # OUTSIDE is not in the background
    for term, k, size in (("A", 4, 6), ("B", 1, 4)):
        row = table.set_index("term").loc[term]
        assert (row["n_overlap"], row["set_size"]) == (k, size)
        expected = hypergeom.sf(k - 1, n_background, size, n_selected)
        assert row["p_value"] == pytest.approx(expected, rel=1e-9)
    assert table["p_value"].is_monotonic_increasing
    assert table.set_index("term").loc["A", "genes"].split(";") == ["G0", "G1", "G2", "G3"] or set(
        table.set_index("term").loc["A", "genes"].split(";")
    ) == {"G0", "G1", "G2", "G3"}
    with pytest.raises(ValidationError, match="None of the selected genes"):
        enrich_genes(["X"], sets, background)
    # a selection that no set touches: an empty table with the usual columns
    empty = enrich_genes(["G25", "G26"], sets, background)
    assert empty.empty and "adjusted_p_value" in empty.columns


def make_embedding():
    genes = ["A", "B", "C", "A", "B", "D"]
    datasets = ["d1", "d1", "d1", "d2", "d2", "d2"]
    X = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.95, 0.05], [0.2, 1], [-1, 0]], dtype=np.float32)
    obs = pd.DataFrame(
        {"gene": genes, "dataset": datasets, "leiden": ["0", "0", "1", "0", "1", "2"]},
        index=[f"{d}:{g}" for d, g in zip(datasets, genes, strict=True)],
    )
    return ad.AnnData(X=X, obs=obs)


def test_nearest_genes_and_instances():
    emb = make_embedding()
    table = nearest_genes(emb, "A", top=3)
    assert list(table["gene"]) == ["B", "B", "C"]
    assert list(table["dataset"]) == ["d1", "d2", "d1"]
    assert "A" not in set(table["gene"])
    # Score = best cosine to any instance of A: d1:B is closest to d2:A (0.95, 0.05).
    b, a2 = np.array([0.9, 0.1]), np.array([0.95, 0.05])
    expected = b @ a2 / (np.linalg.norm(b) * np.linalg.norm(a2))
    assert table["cosine"].iloc[0] == pytest.approx(expected, abs=1e-4)
    assert table["closest_instance"].iloc[0] == "d2"
    only_d2 = nearest_genes(emb, "A", top=5, datasets=["d2"])
    assert set(only_d2["dataset"]) == {"d2"}
    inst = gene_instances(emb, "A")
    assert list(inst.index) == ["d1", "d2"] and inst.loc["d1", "d2"] > 0.99
    with pytest.raises(ValidationError, match="not in this run"):
        nearest_genes(emb, "ZZZ")
    with pytest.raises(ValidationError, match="Unknown dataset"):
        nearest_genes(emb, "A", datasets=["d9"])


def test_selection_genes():
    emb = make_embedding()
    assert selection_genes(emb, cluster="0") == ["A", "B"]
    assert selection_genes(emb, genes=["B", "A", "B"]) == ["A", "B"]
    with pytest.raises(ValidationError):
        selection_genes(emb, cluster="7")
    with pytest.raises(ValidationError):
        selection_genes(emb)


def test_cli_on_a_trained_run(tmp_path, capsys):
    """Planted modules of the simulator come out enriched for their own gene set."""
    from musegnn_core.cli import main
    from musegnn_core.data.demo import fill_demo, resources_dir
    from musegnn_core.graphs.build import GraphConfig
    from musegnn_core.train import make_config, train
    from musegnn_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws")
    fill_demo(ws, prefer_simulated=True)
    train(
        ws,
        make_config(
            "quick",
            epochs=15,
            graph=GraphConfig(n_genes=150, selection="shared", edges_per_gene=30),
        ),
        run_name="r",
    )
    gmt = str(resources_dir(ws) / "planted_modules.gmt")
    emb = ad.read_h5ad(ws.runs_dir / "r" / "embeddings.h5ad")
    sizes = emb.obs["leiden"].value_counts()
    cluster = str(sizes.index[0])
    assert (
        main(
            [
                "enrich",
                "-w",
                str(ws.root),
                "--run",
                "r",
                "--cluster",
                cluster,
                "--gene-sets",
                gmt,
                "--json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert rows and rows[0]["p_value"] <= rows[-1]["p_value"]
    gene = str(emb.obs["gene"].iloc[0])
    assert main(["neighbors", "-w", str(ws.root), "--run", "r", "--gene", gene, "--top", "5"]) == 0
    assert "cosine between its instances" in capsys.readouterr().out
    assert main(["neighbors", "-w", str(ws.root), "--run", "r", "--gene", "NOPE"]) == 2
    assert (
        main(["enrich", "-w", str(ws.root), "--run", "r", "--cluster", "999", "--gene-sets", gmt])
        == 2
    )

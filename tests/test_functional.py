"""Functional measures (gene-set coherence, function prediction) and the GMT reader."""

from __future__ import annotations

import math

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from musegnn_core.analysis.functional import (
    function_prediction_auroc,
    function_prediction_table,
    geneset_coherence_auroc,
)
from musegnn_core.analysis.genesets import read_gmt
from musegnn_core.errors import InputFileError, ValidationError
from tests.conftest import requires_shared_data


def make_embedding(X, genes, datasets) -> ad.AnnData:
    obs = pd.DataFrame(
        {"gene": list(genes), "dataset": list(datasets)},
        index=[f"r{i}" for i in range(len(genes))],
    )
    return ad.AnnData(X=np.asarray(X, dtype=np.float32), obs=obs)


def planted(n_sets=6, genes_per_set=20, n_datasets=3, noise=0.3, seed=0, structured=True):
    """Genes in disjoint sets; with ``structured`` each set's genes share a direction in
    every dataset, otherwise all rows are random. Each gene appears in every dataset."""
    rng = np.random.default_rng(seed)
    gene_sets = {f"SET{s}": [f"S{s}G{g}" for g in range(genes_per_set)] for s in range(n_sets)}
    centres = rng.normal(size=(n_sets, 16)) * 3
    X, genes, datasets = [], [], []
    for d in range(n_datasets):
        for s, members in enumerate(gene_sets.values()):
            for gene in members:
                base = centres[s] if structured else np.zeros(16)
                X.append(base + rng.normal(size=16) * (noise if structured else 1.0))
                genes.append(gene)
                datasets.append(f"d{d}")
    return make_embedding(X, genes, datasets), gene_sets


# ---------------------------------------------------------------- coherence
def test_coherence_hand_example():
    X = [[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.6, 0.8], [5.0, 5.0], [1.0, 0.0]]
    genes = ["A", "B", "C", "D", "UNANNOTATED", "A"]
    datasets = ["d1", "d1", "d1", "d1", "d1", "d2"]
    sets = {"S1": ["A", "B"], "S2": ["C", "D"], "EMPTY_HERE": ["Z"]}
    emb = make_embedding(X[:5], genes[:5], datasets[:5])
    # positives A-B 0.8, C-D 0.8; negatives A-C 0, A-D 0.6, B-C 0.6, B-D 0.96:
    # each positive beats 3 of 4 negatives
    assert geneset_coherence_auroc(emb, sets) == pytest.approx(6 / 8)
    # a second copy of A: (A, A') is left out; A' adds A'-B (pos 0.8) and A'-C, A'-D
    # (neg 0, 0.6): positives (0.8 x3) beat 5 of 6 negatives each (all but B-D) -> 15/18
    emb = make_embedding(X, genes, datasets)
    assert geneset_coherence_auroc(emb, sets) == pytest.approx(15 / 18)
    # only pairs across datasets: A'-B (pos 0.8) vs A'-C (0), A'-D (0.6) -> 1
    assert geneset_coherence_auroc(emb, sets, pairs="across") == pytest.approx(1.0)
    assert geneset_coherence_auroc(emb, sets, pairs="within") == pytest.approx(6 / 8)
    with pytest.raises(ValidationError):
        geneset_coherence_auroc(emb, sets, pairs="sideways")
    with pytest.raises(ValidationError):
        geneset_coherence_auroc(emb, {})


def test_coherence_extremes_and_sampling():
    emb, sets = planted()
    assert geneset_coherence_auroc(emb, sets) > 0.95
    random, _ = planted(structured=False, seed=1)
    assert geneset_coherence_auroc(random, sets) == pytest.approx(0.5, abs=0.05)
    exact = geneset_coherence_auroc(emb, sets)
    sampled = geneset_coherence_auroc(emb, sets, max_pairs=3000, seed=3)
    assert sampled == geneset_coherence_auroc(emb, sets, max_pairs=3000, seed=3)
    assert sampled == pytest.approx(exact, abs=0.02)
    assert math.isnan(geneset_coherence_auroc(emb, {"ONLY": ["S0G0", "S0G1"]}))


# ------------------------------------------------------- function prediction
def test_function_prediction_hand_example():
    angles = np.deg2rad([0, 10, 50, 60, 100, 170])
    X = np.c_[np.cos(angles), np.sin(angles)]
    genes = list("ABCDEF")
    emb = make_embedding(X, genes, ["d"] * 6)
    sets = {"S": ["A", "B", "C"], "OTHER": ["D", "E", "F"]}
    # k=1 with one gene per fold (6 folds, 6 genes): each gene is scored by its nearest
    # other gene: A<-B 1, B<-A 1, C<-D 0, D<-C 1, E<-D 0, F<-E 0. Members (1, 1, 0) vs
    # non-members (1, 0, 0): 6 of 9 pairs (ties half).
    table = function_prediction_table(emb, sets, k=1, folds=6, min_set_size=2)
    assert list(table.columns) == ["gene_set", "n_genes", "n_rows", "auroc"]
    by_set = table.set_index("gene_set")["auroc"]
    assert by_set["S"] == pytest.approx(6 / 9)
    # OTHER is the complement: scores 1 - S's, labels flipped -> the same AUROC
    assert by_set["OTHER"] == pytest.approx(6 / 9)
    assert function_prediction_auroc(emb, sets, k=1, folds=6, min_set_size=2) == pytest.approx(
        6 / 9
    )


def test_function_prediction_extremes():
    emb, sets = planted()
    assert function_prediction_auroc(emb, sets, min_set_size=10) > 0.95
    random, _ = planted(structured=False, seed=2)
    assert function_prediction_auroc(random, sets, min_set_size=10) == pytest.approx(0.5, abs=0.08)


def test_function_prediction_groups_folds_by_gene():
    # Every gene has one random vector shared by its rows in three datasets, and the sets
    # are random. Without grouping, a test row's nearest training row would be the same
    # gene from another dataset and the AUROC near 1; grouped, it stays at chance.
    rng = np.random.default_rng(4)
    n_genes = 300
    vectors = rng.normal(size=(n_genes, 16))
    genes = [f"G{i}" for i in range(n_genes)]
    emb = make_embedding(np.vstack([vectors] * 3), genes * 3, np.repeat(["a", "b", "c"], n_genes))
    sets = {f"SET{s}": list(rng.choice(genes, 40, replace=False)) for s in range(5)}
    value = function_prediction_auroc(emb, sets, min_set_size=10)
    assert value == pytest.approx(0.5, abs=0.08)


def test_function_prediction_set_selection():
    emb, sets = planted(n_sets=8, genes_per_set=12)
    sets = {**sets, "TINY": ["S0G0", "S1G0"]}
    table = function_prediction_table(emb, sets, min_set_size=10, max_sets=3, seed=0)
    assert len(table) == 3 and "TINY" not in set(table["gene_set"])
    again = function_prediction_table(emb, sets, min_set_size=10, max_sets=3, seed=0)
    assert list(again["gene_set"]) == list(table["gene_set"])
    assert (table["n_genes"] == 12).all() and (table["n_rows"] == 36).all()
    assert math.isnan(function_prediction_auroc(emb, sets, min_set_size=50))


# --------------------------------------------------------------------- GMT
def test_read_gmt_formats(tmp_path):
    path = tmp_path / "sets.gmt"
    path.write_text(
        "SET_A\thttp://x\tG1\tG2\tG1\t\n"  # duplicate gene, trailing tab
        "\n"
        "SET_B\t\tG3,1.0\tG4\r\n"  # Enrichr: empty description, weighted gene
        "SET_A\tagain\tG5\n"  # repeated name: merged
    )
    assert read_gmt(path) == {"SET_A": ["G1", "G2", "G5"], "SET_B": ["G3", "G4"]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\n\n", "empty"),
        (b"SET_A\tdesc\tG1\nSET_B\tG2\n", "line 2"),
        (b"SET_A\tdesc\t\t\n", "no genes"),
        (b"\tdesc\tG1\n", "name is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        (b"SET_A\tdesc\tG\xe9NE\n", "UTF-8"),
    ],
)
def test_read_gmt_errors(tmp_path, content, message):
    path = tmp_path / "bad.gmt"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match=message):
        read_gmt(path)


def test_read_gmt_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        read_gmt(tmp_path / "nope.gmt")


@requires_shared_data
def test_read_real_libraries(shared_data):
    hallmark = read_gmt(shared_data / "genesets" / "human_msigdb_hallmark_v7.0.symbols.gmt")
    assert len(hallmark) == 50
    assert all(name.startswith("HALLMARK_") for name in hallmark)
    assert "JUNB" in hallmark["HALLMARK_TNFA_SIGNALING_VIA_NFKB"]
    go = read_gmt(shared_data / "genesets" / "human_enrichr_GO_Biological_Process_2021.gmt")
    assert len(go) > 6000
    assert all(genes for genes in go.values())

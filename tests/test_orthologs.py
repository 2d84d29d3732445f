"""Human-mouse ortholog tables: loading, one-to-one filtering and gene mapping."""

from __future__ import annotations

import gzip
import warnings

import anndata as ad
import pandas as pd
import pytest

from musegnn_core.errors import InputFileError, ValidationError
from musegnn_core.graphs.hvg import select_hvgs_pearson
from musegnn_core.graphs.orthologs import (
    default_ortholog_table_path,
    load_ortholog_table,
    map_genes_to_human,
    one_to_one_lookup,
    one_to_one_orthologs,
    ortholog_lookup,
)
from musegnn_core.graphs.qc import run_qc
from tests.conftest import requires_shared_data


def pairs(table: pd.DataFrame) -> set[tuple[str, str]]:
    return set(zip(table["human_symbol"], table["mouse_symbol"], strict=True))


HAND_MADE = pd.DataFrame(
    [
        ("ACTB", "Actb", 12),  # clean 1:1
        ("A2M", "A2m", 10),  # best of two: the weak paralog hit goes
        ("A2M", "Mug1", 3),
        ("CCL3", "Ccl3", 5),  # two human genes -> one mouse gene, equal support: ambiguous
        ("CCL3L1", "Ccl3", 5),
        ("GAPDH", "Gapdh", 9),  # one human -> two mouse genes, equal support: ambiguous
        ("GAPDH", "Gm3839", 9),
        ("SERPINA1", "Serpina1a", 8),  # Serpina1a's best partner is SERPINA1 ...
        ("SERPINA3", "Serpina1a", 4),  # ... so SERPINA3 keeps only its other pair
        ("SERPINA3", "Serpina3n", 7),
        ("ACTB", "Actb", 12),  # exact duplicate row
    ],
    columns=["human_symbol", "mouse_symbol", "support_n"],
)


def test_one_to_one_with_support_keeps_best_and_drops_ties():
    result = one_to_one_orthologs(HAND_MADE)
    assert pairs(result) == {
        ("ACTB", "Actb"),
        ("A2M", "A2m"),
        ("SERPINA1", "Serpina1a"),
        ("SERPINA3", "Serpina3n"),
    }
    assert one_to_one_orthologs(result).equals(result)  # idempotent


def test_one_to_one_without_support_drops_every_many_to_one():
    result = one_to_one_orthologs(HAND_MADE.drop(columns="support_n"))
    assert pairs(result) == {("ACTB", "Actb")}
    mouse_many_to_one = pd.DataFrame(
        {"human_symbol": ["H1", "H2", "H3"], "mouse_symbol": ["M1", "M1", "M3"]}
    )
    assert pairs(one_to_one_orthologs(mouse_many_to_one)) == {("H3", "M3")}


def test_map_genes_mouse_human_and_other():
    genes = ["Actb", "A2m", "Ccl3", "Gapdh", "Mug1", "Unknown1"]
    mapped = map_genes_to_human(genes, "mouse", HAND_MADE)
    assert list(mapped.columns) == ["original", "human"]
    assert mapped["original"].tolist() == genes
    assert mapped["human"].tolist() == ["ACTB", "A2M", None, None, None, None]
    human = map_genes_to_human(["ACTB", "MTOR"], "human", HAND_MADE)
    assert human["human"].tolist() == ["ACTB", "MTOR"]
    other = map_genes_to_human(["Actb", "geneX"], "other", None)
    assert other["human"].tolist() == ["Actb", "geneX"]
    with pytest.raises(InputFileError, match="ortholog table"):
        map_genes_to_human(["Actb"], "mouse", None)
    with pytest.raises(ValidationError, match="species"):
        map_genes_to_human(["Actb"], "rat", HAND_MADE)


def test_load_table_tsv_gz_and_csv(tmp_path):
    tsv = tmp_path / "orth.tsv.gz"
    with gzip.open(tsv, "wt") as fh:
        HAND_MADE.assign(extra="x").to_csv(fh, sep="\t", index=False)
    table = load_ortholog_table(tsv)
    assert list(table.columns) == ["human_symbol", "mouse_symbol", "support_n"]
    assert len(table) == len(HAND_MADE) - 1  # the duplicate pair collapsed
    assert table["support_n"].max() == 12

    csv = tmp_path / "orth.csv"
    pd.DataFrame({"human_symbol": [" ACTB ", None], "mouse_symbol": ["Actb", "Gapdh"]}).to_csv(
        csv, index=False
    )
    table = load_ortholog_table(csv)
    assert list(table.columns) == ["human_symbol", "mouse_symbol"]
    assert pairs(table) == {("ACTB", "Actb")}  # stripped; the row without a symbol dropped


def test_ortholog_lookup_reads_a_file_once_until_it_changes(tmp_path):
    path = tmp_path / "orth.tsv"
    HAND_MADE.to_csv(path, sep="\t", index=False)
    first = ortholog_lookup(path)
    assert first.to_dict() == one_to_one_lookup(HAND_MADE).to_dict()
    assert first.to_dict() == {"Actb": "ACTB", "A2m": "A2M", "Serpina1a": "SERPINA1",
                               "Serpina3n": "SERPINA3"}  # fmt: skip
    assert ortholog_lookup(path) is first  # cached
    mapped = map_genes_to_human(["Actb", "Ccl3"], "mouse", first)
    assert list(mapped["human"]) == ["ACTB", None]  # a ready lookup maps as the table does

    HAND_MADE.iloc[:1].to_csv(path, sep="\t", index=False)  # a new table, smaller file
    assert ortholog_lookup(path).to_dict() == {"Actb": "ACTB"}
    path.unlink()
    with pytest.raises(InputFileError, match="not found"):
        ortholog_lookup(path)


def test_load_table_errors(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        load_ortholog_table(tmp_path / "missing.tsv")
    wrong = tmp_path / "wrong.tsv"
    wrong.write_text("human\tmouse\nACTB\tActb\n")
    with pytest.raises(InputFileError, match="lacks column"):
        load_ortholog_table(wrong)
    broken = tmp_path / "broken.tsv.gz"
    broken.write_bytes(b"this is not gzip data")
    with pytest.raises(InputFileError, match="Cannot read"):
        load_ortholog_table(broken)
    empty = tmp_path / "empty.tsv"
    empty.write_text("human_symbol\tmouse_symbol\n")
    with pytest.raises(InputFileError, match="no usable"):
        load_ortholog_table(empty)


# ---------------------------------------------------------------- the real HCOP table


@pytest.fixture(scope="module")
def hcop():
    path = default_ortholog_table_path()
    assert path is not None and path.name == "human_mouse_orthologs_hcop.tsv.gz"
    return load_ortholog_table(path)


def real_hvgs(shared_data, name: str) -> tuple[list[str], str]:
    adata = ad.read_h5ad(shared_data / "atlas" / f"{name}.h5ad")
    meta = adata.uns["dataset"]
    adata, _ = run_qc(adata, meta["modality"], meta["species"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return select_hvgs_pearson(adata, n_genes=1000), meta["species"]


@requires_shared_data
def test_hcop_one_to_one_table(hcop):
    one = one_to_one_orthologs(hcop)
    assert 17_000 <= len(one) <= 18_500  # 17595 measured
    assert one["human_symbol"].is_unique and one["mouse_symbol"].is_unique
    assert {("ACTB", "Actb"), ("A2M", "A2m"), ("MTOR", "Mtor")} <= pairs(one)


@requires_shared_data
def test_pancreas_hvgs_across_species(shared_data, hcop):
    human, _ = real_hvgs(shared_data, "scrna_human_pancreas_pdac_indrop")
    mouse, species = real_hvgs(shared_data, "scrna_mouse_pancreas_e15_10x")
    mapped = map_genes_to_human(mouse, species, hcop)
    fraction = mapped["human"].notna().mean()
    shared = set(human) & set(mapped["human"].dropna())
    print(f"mouse pancreas HVGs mapped: {fraction:.3f}; shared with human pancreas: {len(shared)}")
    assert 0.88 <= fraction <= 0.96  # 0.920 measured; the reference reports about 0.91
    # Measured 86. The ceiling is low: the shipped mouse data hold only 2000 preselected
    # genes and the human data a 7000-gene subset; only 432 mapped genes are in both.
    assert len(shared) >= 60


@requires_shared_data
def test_brain_hvgs_across_species_share_hundreds(shared_data, hcop):
    human, _ = real_hvgs(shared_data, "scrna_human_brain_cortex_darmanis_c1")
    mouse, species = real_hvgs(shared_data, "scrna_mouse_brain_zeisel_subset")
    mapped = map_genes_to_human(mouse, species, hcop)
    shared = set(human) & set(mapped["human"].dropna())
    print(
        f"zeisel HVGs mapped: {mapped['human'].notna().mean():.3f}; shared with darmanis: {len(shared)}"
    )
    assert mapped["human"].notna().mean() >= 0.88  # 0.904 measured
    assert len(shared) >= 150  # 234 measured


# ------------------------------------------- shared genes, known before graphs are built
def test_datasets_share_genes_through_orthologs(tmp_path):
    """The pre-build check of training reads gene names only and maps mouse to human."""
    from musegnn_core.graphs.overlap import check_datasets_share_genes, node_names
    from musegnn_core.metadata import DatasetMeta
    from musegnn_core.workspace import Workspace
    from tests.factories import make_counts

    ws = Workspace.open(tmp_path / "ws")
    (ws.root / "resources").mkdir()
    pd.DataFrame({"human_symbol": ["GENE1", "GENE2"], "mouse_symbol": ["Gene1", "Gene2"]}).to_csv(
        ws.root / "resources" / "orthologs.tsv", sep="\t", index=False
    )
    human, mouse, other = make_counts(), make_counts(species="mouse"), make_counts()
    other.var_names = [f"X{i}" for i in range(other.n_vars)]
    items = [
        (adata, DatasetMeta(name, species, "blood", "scrna", "10x"))
        for adata, name, species in (
            (human, "human", "human"),
            (mouse, "mouse", "mouse"),
            (other, "other", "human"),
        )
    ]
    ws.add_datasets(items)
    nodes = node_names(ws, ["human", "mouse"])
    assert nodes["mouse"] & nodes["human"] == {"GENE1", "GENE2"}  # only the mapped pairs
    check_datasets_share_genes(ws, ["human", "mouse"])
    check_datasets_share_genes(ws, ["mouse", "other", "human"])  # one pair is enough
    with pytest.raises(ValidationError, match="share no genes"):
        check_datasets_share_genes(ws, ["mouse", "other"])
    (ws.root / "resources" / "orthologs.tsv").unlink()  # no table: mouse symbols stay
    with pytest.raises(ValidationError, match="share no genes"):
        check_datasets_share_genes(ws, ["human", "mouse"])
    assert not any(ws.graphs_dir.iterdir())

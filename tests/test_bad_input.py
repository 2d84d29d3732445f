"""Bad input through the command line: one clear message, exit status 2, workspace untouched.

Each case runs a real command (``musegnn_core.cli.main`` in-process, and a sample as
``python -m musegnn_core`` subprocesses) against a workspace that already holds data, and
checks three things: exit status 2; exactly one ``error:`` line on stderr and no traceback;
and every file of the workspace byte-identical before and after (the tree is hashed).
The upload and server-path routes of the Data page call the same ``import_datasets``, so
the import matrix covers them too (the page's own staging is checked in test_security).

The inputs: truncated, corrupt, empty and mislabelled h5ad / 10x mtx / 10x h5 / CSV files,
pickles and R objects, non-count values (NaN, inf, negative, fractional, text), all-zero
matrices, too few cells or genes (also counting only genes with counts), a duplicated
dataset name, hostile metadata inside a file, bad spot coordinates, datasets that share
no genes, malformed GMT files, and out-of-range parameters of every command.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pytest
import scipy.sparse as sp

from musegnn_core.cli import main
from musegnn_core.data.importer import ImportOptions, import_datasets
from musegnn_core.paths import PROJECT_ROOT
from musegnn_core.workspace import Workspace
from tests.factories import make_counts, write_10x_h5, write_10x_mtx, write_h5ad, write_table


# ------------------------------------------------------------------ helpers
def snapshot(root: Path, folders: bool = True) -> dict[str, str]:
    """Every path under ``root`` with a hash of its bytes (folders as 'dir').

    Empty ``*.lock`` files are left out: they are advisory locks (created by the first
    command that takes them), never data.
    """
    out = {}
    for path in sorted(Path(root).rglob("*")):
        key = str(path.relative_to(root))
        if path.is_dir():
            if folders:
                out[key] = "dir"
        elif path.name.endswith(".lock") and path.stat().st_size == 0:
            continue
        else:
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def run_main(args: list) -> tuple[int, str, str]:
    """``main`` in-process; a SystemExit from argparse counts as its exit status."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def assert_refused(root: Path, args: list, expect: str) -> str:
    """Run ``args``; exit 2, one ``error:`` line mentioning ``expect``, nothing changed."""
    before = snapshot(root)
    code, _, err = run_main(args)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert len(errors) == 1, err
    assert "Traceback" not in err, err
    assert expect.lower() in errors[0].lower(), errors[0]
    assert snapshot(root) == before, "the workspace changed"
    return errors[0]


# ------------------------------------------------------------------ the bad files
def counts_table(value: str, n: int = 30) -> str:
    """A 30 x 30 genes-by-cells CSV of ones with ``value`` in one cell."""
    rows = ["gene," + ",".join(f"c{i}" for i in range(n))]
    for g in range(n):
        rows.append(f"G{g}," + ",".join(value if (g, i) == (3, 4) else "1" for i in range(n)))
    return "\n".join(rows) + "\n"


def sparse_with_bad_index(path: Path, dataset: str) -> None:
    with h5py.File(path, "r+") as handle:
        indices = handle[dataset][...]
        indices[len(indices) // 2] = 10**6
        handle[dataset][...] = indices


def make_bad_inputs(folder: Path) -> dict[str, Path]:
    """Every bad file of the matrix, by case name."""
    folder.mkdir(parents=True, exist_ok=True)
    good = make_counts()
    files: dict[str, Path] = {}

    def put(name: str, data: bytes | str) -> Path:
        path = folder / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    whole = write_h5ad(good, folder / "whole.h5ad").read_bytes()
    files["h5ad truncated"] = put("truncated.h5ad", whole[: len(whole) // 2])
    files["h5ad header only"] = put("header.h5ad", whole[:100])
    files["h5ad signature then garbage"] = put("garbage.h5ad", whole[:8] + b"x" * 4000)
    files["h5ad that is text"] = put("text.h5ad", "gene,c1\nA,1\n")
    files["h5ad empty"] = put("empty.h5ad", b"")
    with h5py.File(folder / "foreign.h5ad", "w") as handle:
        handle["something"] = np.arange(3)
    files["h5ad not AnnData"] = folder / "foreign.h5ad"
    bad_index = write_h5ad(good, folder / "badindex.h5ad")
    sparse_with_bad_index(bad_index, "X/indices")
    files["h5ad sparse index out of range"] = bad_index

    h5 = write_10x_h5(good, folder / "whole.h5").read_bytes()
    files["10x h5 truncated"] = put("truncated.h5", h5[: len(h5) // 2])
    files["10x h5 empty"] = put("empty.h5", b"")
    with h5py.File(folder / "nogenome.h5", "w") as handle:
        handle["x"] = 1
    files["10x h5 without matrix"] = folder / "nogenome.h5"
    bad_h5 = write_10x_h5(good, folder / "badindex.h5")
    sparse_with_bad_index(bad_h5, "matrix/indices")
    files["10x h5 sparse index out of range"] = bad_h5

    def tenx(name: str, version: str = "v2") -> Path:
        return write_10x_mtx(good, folder / name, version)

    cut = tenx("mtx_truncated", "v3")
    data = gzip.decompress((cut / "matrix.mtx.gz").read_bytes())
    (cut / "matrix.mtx.gz").write_bytes(gzip.compress(data[: len(data) // 2]))
    files["10x mtx truncated"] = cut
    broken_gz = tenx("mtx_broken_gzip", "v3")
    (broken_gz / "matrix.mtx.gz").write_bytes((broken_gz / "matrix.mtx.gz").read_bytes()[:60])
    files["10x mtx broken gzip"] = broken_gz
    banner = tenx("mtx_no_banner")
    (banner / "matrix.mtx").write_text("40 60 1\n1 1 1\n")
    files["10x mtx without banner"] = banner
    bounds = tenx("mtx_out_of_bounds")
    (bounds / "matrix.mtx").write_text(
        "%%MatrixMarket matrix coordinate integer general\n40 60 2\n1 1 5\n99 99 1\n"
    )
    files["10x mtx index out of range"] = bounds
    empty_matrix = tenx("mtx_empty_matrix")
    (empty_matrix / "matrix.mtx").write_text("")
    files["10x mtx empty matrix"] = empty_matrix
    empty_genes = tenx("mtx_empty_genes")
    (empty_genes / "genes.tsv").write_text("")
    files["10x mtx empty gene list"] = empty_genes
    mismatch = tenx("mtx_mismatch")
    (mismatch / "barcodes.tsv").write_text("AAAA-1\n")
    files["10x mtx barcodes of another run"] = mismatch
    negative = tenx("mtx_negative")
    (negative / "matrix.mtx").write_text(
        "%%MatrixMarket matrix coordinate real general\n40 60 1\n1 1 -5\n"
    )
    files["10x mtx negative value"] = negative
    no_barcodes = tenx("mtx_no_barcodes")
    (no_barcodes / "barcodes.tsv").unlink()
    files["10x mtx missing barcodes"] = no_barcodes
    (folder / "not_tenx").mkdir()
    (folder / "not_tenx" / "readme.txt").write_text("nothing here")
    files["folder without a matrix"] = folder / "not_tenx"

    text = write_table(good, folder / "whole.csv").read_text()
    files["csv truncated mid-row"] = put("truncated.csv", text[: len(text) // 2])
    files["csv empty"] = put("empty.csv", b"")
    files["csv header only"] = put("header.csv", "gene,c1,c2\n")
    files["csv binary content"] = put("binary.csv", whole)
    files["csv NaN"] = put("nan.csv", counts_table("nan"))
    files["csv inf"] = put("inf.csv", counts_table("inf"))
    files["csv -inf"] = put("ninf.csv", counts_table("-inf"))
    files["csv negative"] = put("negative.csv", counts_table("-2"))
    files["csv fractional"] = put("fraction.csv", counts_table("1.5"))
    files["csv text value"] = put("word.csv", counts_table("abc"))
    files["tsv with commas"] = put("commas.tsv", counts_table("1"))

    files["pickle"] = put("data.pkl", pickle.dumps({"X": [[1, 2]]}))
    files["R object"] = put("data.rds", b"X\n\x00\x00\x00\x03")
    files["image"] = put("picture.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    files["missing file"] = folder / "does_not_exist.h5ad"

    zero = make_counts()
    zero.X = sp.csr_matrix(zero.shape, dtype=np.float32)
    files["all-zero matrix"] = write_h5ad(zero, folder / "zero.h5ad")
    few_cells = make_counts()
    dense = few_cells.X.toarray()
    dense[5:] = 0
    few_cells.X = sp.csr_matrix(dense)
    files["only 5 cells with counts"] = write_h5ad(few_cells, folder / "fewcells.h5ad")
    few_genes = make_counts()
    dense = few_genes.X.toarray()
    dense[:, 5:] = 0
    few_genes.X = sp.csr_matrix(dense)
    files["only 5 genes with counts"] = write_h5ad(few_genes, folder / "fewgenes.h5ad")
    files["10 cells"] = write_h5ad(make_counts(n_cells=10), folder / "tencells.h5ad")
    files["5 genes"] = write_h5ad(make_counts(n_genes=5), folder / "fivegenes.h5ad")
    files["same name as a dataset"] = write_h5ad(make_counts(seed=3), folder / "existing.h5ad")
    files["path-like name inside the file"] = write_h5ad(
        make_counts(), folder / "evilname.h5ad", {"name": "../../evil"}
    )
    files["unknown species inside the file"] = write_h5ad(
        make_counts(), folder / "martian.h5ad", {"species": "martian"}
    )
    one_column = make_counts()
    one_column.obsm["spatial"] = np.ones((one_column.n_obs, 1))
    files["coordinates with one column"] = write_h5ad(one_column, folder / "onecol.h5ad")
    nan_xy = make_counts()
    nan_xy.obsm["spatial"] = np.full((nan_xy.n_obs, 2), np.nan)
    files["NaN coordinates"] = write_h5ad(nan_xy, folder / "nanxy.h5ad")
    files["good"] = write_h5ad(make_counts(seed=4), folder / "good.h5ad")
    files["coordinates binary"] = put("coords.csv", b"\x00\x01\x02")
    files["coordinates of other spots"] = put("othercoords.csv", "spot,x,y\nnot-a-spot,1,2\n")
    return files


#: case -> (extra CLI options, words the error line must contain)
IMPORT_CASES: dict[str, tuple[list[str], str]] = {
    "h5ad truncated": ([], "truncated"),
    "h5ad header only": ([], "truncated"),
    "h5ad signature then garbage": ([], "could not read"),
    "h5ad that is text": ([], "not an HDF5 file"),
    "h5ad empty": ([], "empty"),
    "h5ad not AnnData": ([], "not an AnnData file"),
    "h5ad sparse index out of range": ([], "damaged"),
    "10x h5 truncated": ([], "truncated"),
    "10x h5 empty": ([], "empty"),
    "10x h5 without matrix": ([], "not a 10x .h5 file"),
    "10x h5 sparse index out of range": ([], "damaged"),
    "10x mtx truncated": ([], "matrix.mtx"),
    "10x mtx broken gzip": ([], "truncated"),
    "10x mtx without banner": ([], "Matrix Market"),
    "10x mtx index out of range": ([], "out of bounds"),
    "10x mtx empty matrix": ([], "matrix.mtx"),
    "10x mtx empty gene list": ([], "empty"),
    "10x mtx barcodes of another run": ([], "different runs"),
    "10x mtx negative value": ([], "negative"),
    "10x mtx missing barcodes": ([], "lacks barcodes"),
    "folder without a matrix": ([], "no 10x matrix"),
    "csv truncated mid-row": ([], "missing"),
    "csv empty": ([], "empty"),
    "csv header only": ([], "no data rows"),
    "csv binary content": ([], "not a text table"),
    "csv NaN": ([], "NaN"),
    "csv inf": ([], "infinite"),
    "csv -inf": ([], "infinite"),
    "csv negative": ([], "negative"),
    "csv fractional": ([], "non-integer"),
    "csv text value": ([], "non-numeric"),
    "tsv with commas": ([], "separated by tabs"),
    "pickle": ([], "pickle"),
    "R object": ([], "R object"),
    "image": ([], "Cannot tell the format"),
    "missing file": ([], "does not exist"),
    "all-zero matrix": ([], "only zeros"),
    "only 5 cells with counts": ([], "only 5 cells"),
    "only 5 genes with counts": ([], "only 5 genes with any count"),
    "10 cells": ([], "only 10 cells"),
    "5 genes": ([], "only 5 genes"),
    "same name as a dataset": ([], "already exists"),
    "path-like name inside the file": ([], "Invalid dataset name"),
    "unknown species inside the file": ([], "Unknown species"),
    "coordinates with one column": ([], "two columns"),
    "NaN coordinates": ([], "missing or infinite coordinates"),
}
#: Bad options of import: (file case, options, words of the error).
IMPORT_OPTION_CASES: dict[str, tuple[str, list[str], str]] = {
    "name with a path": ("good", ["--name", "../evil"], "Invalid dataset name"),
    "name starting with a dot": ("good", ["--name", ".hidden"], "Invalid dataset name"),
    "name too long": ("good", ["--name", "x" * 101], "Invalid dataset name"),
    "unknown species option": ("good", ["--species", "martian"], "invalid choice"),
    "unknown orientation": ("good", ["--orientation", "diagonal"], "invalid choice"),
    "spatial without coordinates": ("good", ["--modality", "spatial"], "coordinates"),
    "coordinates file missing": ("good", ["--coordinates", "{in}/nope.csv"], "nope.csv"),
    "coordinates file binary": ("good", ["--coordinates", "{coordinates binary}"], "numeric"),
    "coordinates of other spots": (
        "good",
        ["--coordinates", "{coordinates of other spots}"],
        "no coordinates for",
    ),
}


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> dict[str, Path]:
    return make_bad_inputs(tmp_path_factory.mktemp("bad-inputs"))


@pytest.fixture(scope="module")
def data_template(tmp_path_factory, bad_inputs) -> Path:
    ws = Workspace.open(tmp_path_factory.mktemp("data-template") / "ws")
    import_datasets(ws, [bad_inputs["good"]], ImportOptions(name="existing"))
    return ws.root


@pytest.fixture
def data_ws(tmp_path, data_template) -> Workspace:
    """A private workspace holding one dataset, named 'existing'."""
    shutil.copytree(data_template, tmp_path / "ws")
    return Workspace.open(tmp_path / "ws")


# ------------------------------------------------------------------ import
@pytest.mark.parametrize("case", sorted(IMPORT_CASES))
def test_bad_file_import(case, data_ws, bad_inputs):
    options, expect = IMPORT_CASES[case]
    name = [] if case == "same name as a dataset" else ["--name", "newone"]
    if case == "path-like name inside the file":
        name = []  # the file's own uns['dataset']['name'] is used, and refused
    assert_refused(
        data_ws.root, ["import", bad_inputs[case], "-w", data_ws.root, *name, *options], expect
    )
    assert data_ws.dataset_names() == ["existing"]


@pytest.mark.parametrize("case", sorted(IMPORT_OPTION_CASES))
def test_bad_import_options(case, data_ws, bad_inputs):
    file_case, options, expect = IMPORT_OPTION_CASES[case]
    paths = {f"{{{k}}}": str(v) for k, v in bad_inputs.items()}
    folder = str(bad_inputs["good"].parent)
    options = [paths.get(o, o).replace("{in}", folder) for o in options]
    assert_refused(
        data_ws.root, ["import", bad_inputs[file_case], "-w", data_ws.root, *options], expect
    )


def test_several_files_all_or_nothing(data_ws, bad_inputs):
    """One bad file among good ones: nothing is imported."""
    args = ["import", bad_inputs["good"], bad_inputs["csv negative"], "-w", data_ws.root]
    assert_refused(data_ws.root, args, "negative")
    args = ["import", bad_inputs["good"], bad_inputs["good"], "-w", data_ws.root, "--name", "x"]
    assert_refused(data_ws.root, args, "single --name")


def test_bad_workspace_paths(tmp_path, bad_inputs):
    """A workspace path that is a file or someone's folder is refused and left alone."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.docx").write_text("precious")
    assert_refused(home, ["import", bad_inputs["good"], "-w", home], "not a MuSe-GNN workspace")
    assert sorted(p.name for p in home.iterdir()) == ["thesis.docx"]
    code, _, err = run_main(["import", bad_inputs["good"], "-w", bad_inputs["good"]])
    assert code == 2 and err.startswith("error:") and "is a file" in err
    code, _, err = run_main(["train", "-w", tmp_path / "nowhere", "--epochs", "1"])
    assert code == 2 and "No workspace" in err and not (tmp_path / "nowhere").exists()


def test_duplicated_names_are_reported_not_fatal(data_ws, tmp_path):
    """Repeated gene and cell names are accepted, made unique, and said so."""
    counts = make_counts()
    counts.var_names = ["DUP"] * 10 + [f"G{i}" for i in range(30)]
    counts.obs_names = ["cell"] * counts.n_obs
    path = write_h5ad(counts, tmp_path / "dups.h5ad")
    code, out, err = run_main(["import", path, "-w", data_ws.root, "--species", "human"])
    assert code == 0, err
    assert "gene names occurred more than once" in out and "cell names were made unique" in out
    stored = data_ws.load_dataset("dups")
    assert stored.var_names.is_unique and stored.obs_names.is_unique


# ---------------------------------------------------- graphs, training, analysis
@pytest.fixture(scope="module")
def analysis_template(trained_sim_workspace_template, tmp_path_factory) -> Path:
    """The trained simulated workspace plus 'noshare': a dataset sharing no gene with any.

    Also holds malformed GMT files beside it (``gmt/``).
    """
    root = tmp_path_factory.mktemp("analysis") / "ws"
    shutil.copytree(trained_sim_workspace_template, root)
    ws = Workspace.open(root)
    renamed = ad.read_h5ad(ws.dataset_path("sim_scrna_human_blood_a"))
    renamed.var_names = [f"NOSHARE{g}" for g in renamed.var_names]
    renamed.uns["dataset"] = {**renamed.uns["dataset"], "name": "noshare"}
    scratch = root.parent / "noshare.h5ad"
    renamed.write_h5ad(scratch)
    import_datasets(ws, [scratch])
    return root


@pytest.fixture
def analysis_ws(analysis_template, tmp_path) -> Path:
    root = tmp_path / "analysis-ws"
    shutil.copytree(analysis_template, root)
    return root


GMT_FILES = {
    "binary": b"\x00\x01\x02\x03",
    "latin-1": "SET\tdesc\tG\xe9NE\n".encode("latin-1"),
    "two fields": b"SET\tdesc\n",
    "spaces, not tabs": b"SET desc GENE1 GENE2\n",
    "empty set name": b"\tdesc\tGENE1\n",
    "set without genes": b"SET\tdesc\t\t\n",
    "empty": b"",
    "blank lines only": b"\n\n \n",
}
GMT_MESSAGES = {
    "binary": "binary",
    "latin-1": "not UTF-8",
    "two fields": "needs at least 3",
    "spaces, not tabs": "needs at least 3",
    "empty set name": "name is empty",
    "set without genes": "has no genes",
    "empty": "no gene sets",
    "blank lines only": "no gene sets",
}


@pytest.fixture(scope="module")
def gmt_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gmt")
    out = {}
    for i, (case, data) in enumerate(GMT_FILES.items()):
        out[case] = folder / f"library{i}.gmt"
        out[case].write_bytes(data)
    return out


@pytest.mark.parametrize("case", sorted(GMT_FILES))
def test_malformed_gmt_enrich_and_evaluate(case, analysis_ws, gmt_files):
    gmt = gmt_files[case]
    enrich = ["enrich", "-w", analysis_ws, "--run", "r", "--genes", "G1,G2", "--gene-sets", gmt]
    assert_refused(analysis_ws, enrich, GMT_MESSAGES[case])
    evaluate = ["evaluate", "-w", analysis_ws, "--run", "r", "--baselines", "random"]
    assert_refused(analysis_ws, [*evaluate, "--gene-sets", gmt], GMT_MESSAGES[case])


def test_missing_gmt(analysis_ws, tmp_path):
    evaluate = ["evaluate", "-w", analysis_ws, "--run", "r", "--baselines", "random"]
    assert_refused(analysis_ws, [*evaluate, "--gene-sets", tmp_path / "none.gmt"], "none.gmt")


#: command -> (arguments after ``-w WS``, words of the error)
PARAMETER_CASES: dict[str, tuple[list[str], str]] = {
    "build-graphs --n-genes -5": (["build-graphs", "--n-genes", "-5"], "n_genes"),
    "build-graphs --n-genes 5": (["build-graphs", "--n-genes", "5"], "n_genes"),
    "build-graphs --n-genes abc": (["build-graphs", "--n-genes", "abc"], "invalid int"),
    "build-graphs --pvalue 2": (["build-graphs", "--pvalue", "2"], "pvalue"),
    "build-graphs --pvalue 0": (["build-graphs", "--pvalue", "0"], "pvalue"),
    "build-graphs --pvalue nan": (["build-graphs", "--pvalue", "nan"], "pvalue"),
    "build-graphs --max-neighbours -1": (
        ["build-graphs", "--max-neighbours", "-1"],
        "edges_per_gene",
    ),
    "build-graphs --correction x": (["build-graphs", "--correction", "x"], "invalid choice"),
    "build-graphs --datasets nope": (["build-graphs", "--datasets", "nope"], "No dataset"),
    "train --epochs 0": (["train", "--epochs", "0"], "epochs"),
    "train --epochs -3": (["train", "--epochs", "-3"], "epochs"),
    "train --epochs 1000000": (["train", "--epochs", "1000000"], "epochs"),
    "train --seed -1": (["train", "--seed", "-1"], "seed"),
    "train --lr-encoder 5": (["train", "--lr-encoder", "5"], "lr_encoder"),
    "train --lr-decoder nan": (["train", "--lr-decoder", "nan"], "lr_decoder"),
    "train --n-genes 3": (["train", "--n-genes", "3"], "n_genes"),
    "train --pvalue 1.5": (["train", "--pvalue", "1.5"], "pvalue"),
    "train --leiden-resolution -1": (["train", "--leiden-resolution", "-1"], "resolution"),
    "train --run-name ../evil": (["train", "--run-name", "../evil"], "Invalid run name"),
    "train --run-name existing": (["train", "--run-name", "r", "--epochs", "1"], "already"),
    "train --datasets nope": (["train", "--datasets", "nope", "--epochs", "1"], "No dataset"),
    "train --resume without run": (["train", "--resume", "--epochs", "1"], "which run"),
    "train --resume ghost": (["train", "--resume", "--run-name", "ghost"], "No run named"),
    "evaluate --baselines foo": (["evaluate", "--run", "r", "--baselines", "foo"], "baseline"),
    "evaluate --run nope": (["evaluate", "--run", "nope"], "No run named"),
    "evaluate --run ../x": (["evaluate", "--run", "../x"], "Invalid run name"),
    "enrich --cluster 999": (
        ["enrich", "--run", "r", "--cluster", "999", "--gene-sets", "{gmt}"],
        "No cluster",
    ),
    "enrich --genes unknown": (
        ["enrich", "--run", "r", "--genes", "ZZZ", "--gene-sets", "{gmt}"],
        "None of the selected genes",
    ),
    "enrich without libraries": (["enrich", "--run", "r", "--genes", "G1"], "gene-set"),
    "neighbors --top -1": (["neighbors", "--run", "r", "--gene", "G1", "--top", "-1"], "top"),
    "enrich --top -1": (
        ["enrich", "--run", "r", "--genes", "G1,G2", "--gene-sets", "{gmt}", "--top", "-1"],
        "top",
    ),
}


@pytest.fixture(scope="module")
def good_gmt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("good-gmt") / "sets.gmt"
    path.write_text("SET_A\tdesc\tG1\tG2\tG3\nSET_B\tdesc\tG4\tG5\n")
    return path


@pytest.mark.parametrize("case", sorted(PARAMETER_CASES))
def test_out_of_range_parameters(case, analysis_ws, good_gmt):
    args, expect = PARAMETER_CASES[case]
    args = [str(good_gmt) if a == "{gmt}" else a for a in args]
    assert_refused(analysis_ws, [args[0], "-w", analysis_ws, *args[1:]], expect)


def test_evaluate_negative_seed(analysis_ws):
    args = ["evaluate", "-w", analysis_ws, "--run", "r", "--baselines", "random"]
    assert_refused(analysis_ws, [*args, "--seed", "-1"], "seed")


def test_train_on_datasets_sharing_no_genes(analysis_ws):
    """Refused from the gene names before any graph is built: the workspace is unchanged."""
    args = ["train", "-w", analysis_ws, "--datasets", "sim_scrna_human_blood_a,noshare"]
    assert_refused(analysis_ws, [*args, "--epochs", "2", "--run-name", "ns"], "share no genes")


def assert_graph_folders_complete(root: Path) -> None:
    for folder in (root / "graphs").glob("*/*"):
        if folder.is_dir():
            names = {p.name for p in folder.iterdir()}
            assert {"graph.json", "adjacency.npz", "features.npy", "genes.tsv"} <= names, folder


def test_build_graphs_on_datasets_sharing_no_genes(analysis_ws):
    """Graphs are per dataset, so building them is allowed; it must end cleanly either way."""
    args = ["build-graphs", "-w", analysis_ws, "--datasets", "sim_scrna_human_blood_a,noshare"]
    code, _, err = run_main([*args, "--n-genes", "100", "--selection", "shared"])
    assert "Traceback" not in err
    assert code == 0 or (code == 2 and err.count("error:") == 1), err
    assert_graph_folders_complete(Path(analysis_ws))


# ---------------------------------------------------------- real entry point
def test_sample_through_python_m(data_ws, analysis_ws, bad_inputs, gmt_files):
    """A sample of the matrix as users run it: ``python -m musegnn_core`` processes."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    data_root, runs_root = data_ws.root, Path(analysis_ws)
    two_fields = gmt_files["two fields"]
    cases = [
        (data_root, ["import", bad_inputs["h5ad truncated"], "-w", data_root], "truncated"),
        (runs_root, ["train", "-w", runs_root, "--epochs", "0"], "epochs"),
        (runs_root, ["build-graphs", "-w", runs_root, "--pvalue", "2"], "pvalue"),
        (
            runs_root,
            ["enrich", "-w", runs_root, "--run", "r", "--genes", "G1", "--gene-sets", two_fields],
            "needs at least 3",
        ),
    ]
    before = {root: snapshot(root) for root in (data_root, runs_root)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "musegnn_core", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _, args, _ in cases
    ]
    for process, (_, args, expect) in zip(processes, cases, strict=True):
        _, err = process.communicate(timeout=180)
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert process.returncode == 2, (args, err)
        assert len(errors) == 1 and expect in errors[0], (args, err)
        assert "Traceback" not in err, err
    for root, files in before.items():
        assert snapshot(root) == files


# ------------------------------------------------------------------ pipes and devices
@pytest.mark.timeout(120)
def test_pipes_and_devices_are_refused_without_waiting(data_ws, tmp_path, bad_inputs):
    """A FIFO or a device would block a reader forever; they are refused at once."""
    fifo = tmp_path / "stream.csv"
    os.mkfifo(fifo)
    assert_refused(data_ws.root, ["import", fifo, "-w", data_ws.root], "not a regular file")
    assert_refused(data_ws.root, ["import", "/dev/zero", "-w", data_ws.root], "regular file")
    folder = write_10x_mtx(make_counts(), tmp_path / "tenx", "v2")
    (folder / "matrix.mtx").unlink()
    os.mkfifo(folder / "matrix.mtx")
    assert_refused(data_ws.root, ["import", folder, "-w", data_ws.root], "not a regular file")
    coords = tmp_path / "coords.csv"
    os.mkfifo(coords)
    args = ["import", bad_inputs["good"], "-w", data_ws.root, "--coordinates", coords]
    assert_refused(data_ws.root, [*args, "--name", "xy"], "not a regular file")


# ------------------------------------------------------------------ gene-set uploads
@pytest.mark.parametrize("case", sorted(GMT_FILES))
def test_malformed_gmt_upload_changes_nothing(case, tmp_path):
    """The Enrichment page's library upload checks the file before keeping it."""
    from musegnn_core.analysis.libraries import save_uploaded_library
    from musegnn_core.errors import InputFileError

    ws = Workspace.open(tmp_path / "ws")
    before = snapshot(ws.root)  # folders too: no empty resources/genesets/ is left
    with pytest.raises(InputFileError, match=GMT_MESSAGES[case]):
        save_uploaded_library(ws, "mine.gmt", GMT_FILES[case])
    assert snapshot(ws.root) == before


def test_gmt_upload_wrong_type_or_too_large(tmp_path, monkeypatch):
    import musegnn_core.analysis.libraries as libraries
    from musegnn_core.errors import InputFileError

    ws = Workspace.open(tmp_path / "ws")
    before = snapshot(ws.root)
    with pytest.raises(InputFileError, match=r"not a \.gmt file"):
        libraries.save_uploaded_library(ws, "sets.pkl", pickle.dumps({"a": ["b"]}))
    monkeypatch.setattr(libraries, "MAX_LIBRARY_BYTES", 10)
    with pytest.raises(InputFileError, match="larger than"):
        libraries.save_uploaded_library(ws, "big.gmt", b"SET\tdesc\tGENE1\tGENE2\n")
    assert snapshot(ws.root) == before

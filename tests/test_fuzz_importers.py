"""Fuzzing the importers: odd and damaged files import or are refused, quickly and cleanly.

Every case goes through :func:`import_datasets` into a real workspace. The only outcomes
allowed are a successful import (the dataset then reads back) or a ``MuseGNNError`` with a
one-line message, within a time bound, with the workspace byte-identical to before.
A traceback, a hang, a crash or a partial write fails the test.

Three sources of input:

- hypothesis strategies for CSV/TSV tables, 10x matrix folders and h5ad files, from
  clean (which must import and read back exactly) to hostile (NaN, negatives, fractions,
  odd labels, wrong declared sizes, broken headers, bad coordinates, wrong types);
- a seeded mutation run (truncation, bit flips, inserted garbage, zeroed blocks, also
  inside the gzip stream) over small files made by the test factories;
- the same mutation run over small subsets of the real shared data, when present.

History: this run found that a damaged HDF5 file could hang the HDF5 library (zeroed
blocks in a gzip-compressed h5ad) or crash the process (out-of-range sparse indices in a
10x .h5). Both are now caught: HDF5 files are first read by a throw-away process with a
time limit (:mod:`musegnn_core.data.hdf5_probe`) and sparse indices are checked.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import random
import shutil
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import musegnn_core.data.hdf5_probe as hdf5_probe
from musegnn_core.analysis.genesets import read_gmt
from musegnn_core.data.importer import ImportOptions, import_datasets
from musegnn_core.data.validate import ImportLimits
from musegnn_core.errors import InputFileError, MuseGNNError
from musegnn_core.workspace import Workspace
from tests.conftest import requires_shared_data
from tests.factories import make_counts, write_10x_h5, write_10x_mtx, write_h5ad, write_table

#: Wall-clock bound per case. A healthy small file takes well under a second; a file that
#: makes the HDF5 library loop is cut off by the probe after PROBE_SECONDS.
CASE_SECONDS = 20.0
PROBE_SECONDS = 5.0
SMALL = ImportLimits(min_cells=2, min_genes=2)
FUZZ_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_names = itertools.count()


# ---------------------------------------------------------------- harness
def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` with a hash of its bytes (folders as 'dir')."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_dir():
            out[key] = "dir"
        elif path.name.endswith(".lock") and path.stat().st_size == 0:
            continue  # advisory lock files: created on first use, never hold data
        else:
            out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(autouse=True)
def short_probe(monkeypatch):
    """A short probe limit so a file that hangs the HDF5 library costs seconds here."""
    monkeypatch.setattr(hdf5_probe, "PROBE_TIMEOUT_SECONDS", PROBE_SECONDS)


@pytest.fixture
def ws(tmp_path):
    return Workspace.open(tmp_path / "ws")


def import_once(ws: Workspace, path: Path, **options) -> str:
    """Import ``path``; check the outcome is clean. Returns 'imported' or 'refused'."""
    name = f"case{next(_names)}"
    before = snapshot(ws.root)
    start = time.perf_counter()
    try:
        [item] = import_datasets(ws, [path], ImportOptions(name=name, **options))
    except MuseGNNError as exc:
        message = str(exc)
        assert message.strip() and "\n" not in message and "Traceback" not in message, message
        assert snapshot(ws.root) == before, f"workspace changed by a refused import: {message}"
        outcome = "refused"
    else:
        stored = ws.load_dataset(name)
        assert stored.shape == (item.meta.n_cells, item.meta.n_genes)
        assert stored.X.dtype.kind == "f" and np.all(np.isfinite(stored.X.data))
        assert np.all(stored.X.data > 0) and np.all(stored.X.data == np.round(stored.X.data))
        changed = {k for k in set(before) | set(snapshot(ws.root)) if k not in before}
        assert changed == {f"datasets/{name}.h5ad"}, changed
        outcome = "imported"
    elapsed = time.perf_counter() - start
    assert elapsed < CASE_SECONDS, f"{path.name} took {elapsed:.1f} s"
    return outcome


# ------------------------------------------------------------- strategies
LABEL = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=10,
)
CLEAN_LABEL = st.from_regex(r"[A-Z][A-Z0-9]{1,6}", fullmatch=True)
ODD_VALUES = st.one_of(
    st.integers(-5, 60).map(str),
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(repr),
    st.sampled_from(["", "NA", "nan", "inf", "-inf", "1e400", "1e30", "0x10", "1,5", '"3"']),
    st.sampled_from(["abc", "Ω", " 4 ", "TRUE", "-0", "+2", "3.", "2e1", "\u00a0"]),
)


@st.composite
def tables(draw):
    """(text, suffix, expected cells x genes array or None when the table is hostile)."""
    clean = draw(st.booleans())
    n_genes = draw(st.integers(0 if not clean else 2, 25))
    n_cells = draw(st.integers(0 if not clean else 2, 25))
    suffix = draw(st.sampled_from([".csv", ".tsv", ".txt", ".csv.gz"]))
    sep = "," if ".csv" in suffix else "\t"
    if clean:
        genes = draw(st.lists(CLEAN_LABEL, min_size=n_genes, max_size=n_genes, unique=True))
        cells = [f"cell{i}" for i in range(n_cells)]
        counts = np.array(
            draw(
                st.lists(
                    st.lists(st.integers(0, 30), min_size=n_cells, max_size=n_cells),
                    min_size=n_genes,
                    max_size=n_genes,
                )
            ),
            dtype=np.int64,
        ).reshape(n_genes, n_cells)
        counts[:, 0] += 1  # no empty cell...
        counts[0, :] += 1  # ...and no empty gene, so the clean table survives intact
        rows = [["gene", *cells]] + [
            [g, *map(str, row)] for g, row in zip(genes, counts, strict=True)
        ]
        expected = (counts.T, cells, genes)
    else:
        sep = draw(st.sampled_from([sep, sep, ";", " "]))
        header = [draw(LABEL) for _ in range(n_cells + 1)]
        rows = [header] + [
            [draw(LABEL)] + [draw(ODD_VALUES) for _ in range(draw(st.integers(0, n_cells + 1)))]
            for _ in range(n_genes)
        ]
        expected = None
    text = draw(st.sampled_from(["\n", "\r\n"])).join(sep.join(r) for r in rows)
    if not clean and draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    return text, suffix, expected


@st.composite
def mtx_folders(draw):
    """Files of a 10x folder, often inconsistent with each other; (files, clean?)."""
    clean = draw(st.booleans())
    n_genes, n_cells = draw(st.integers(0, 25)), draw(st.integers(0, 25))
    field = "integer" if clean else draw(st.sampled_from(["integer", "real", "pattern", "bogus"]))
    value = st.integers(1, 30).map(str) if clean else ODD_VALUES
    entries = draw(
        st.lists(
            st.tuples(
                st.integers(1, max(1, n_genes + (0 if clean else 2))),
                st.integers(1, max(1, n_cells + (0 if clean else 2))),
                value,
            ),
            max_size=80,
        )
    )
    declared = len(entries) if clean else draw(st.sampled_from([len(entries), len(entries) + 3]))
    lines = [f"%%MatrixMarket matrix coordinate {field} general", f"{n_genes} {n_cells} {declared}"]
    lines += [f"{i} {j}" + ("" if field == "pattern" else f" {v}") for i, j, v in entries]
    n_features = n_genes if clean else n_genes + draw(st.integers(-1, 1))
    n_barcodes = n_cells if clean else n_cells + draw(st.integers(-1, 1))
    labels = st.just("x") if clean else LABEL
    features = [f"ENSG{i}\t{draw(labels)}{i}\tGene Expression" for i in range(max(0, n_features))]
    barcodes = [f"{draw(labels)}{i}" for i in range(max(0, n_barcodes))]
    gz = draw(st.booleans())
    return {
        ("matrix.mtx.gz" if gz else "matrix.mtx"): "\n".join(lines) + "\n",
        ("features.tsv.gz" if gz else "genes.tsv"): "\n".join(features) + "\n",
        ("barcodes.tsv.gz" if gz else "barcodes.tsv"): "\n".join(barcodes) + "\n",
    }


FINITE_COUNTS = st.integers(0, 40).map(float)
HOSTILE_NUMBERS = st.one_of(
    FINITE_COUNTS, st.floats(allow_nan=True, allow_infinity=True, width=32), st.just(-1.0)
)


@st.composite
def anndatas(draw):
    """An AnnData as a user might save it, from clean counts to nonsense; (adata, clean?)."""
    clean = draw(st.booleans())
    low = 2 if clean else 1
    n_cells, n_genes = draw(st.integers(low, 12)), draw(st.integers(low, 12))
    values = np.array(
        draw(
            st.lists(
                FINITE_COUNTS if clean else HOSTILE_NUMBERS,
                min_size=n_cells * n_genes,
                max_size=n_cells * n_genes,
            )
        ),
        dtype=np.float64,
    ).reshape(n_cells, n_genes)
    if clean:
        values[:, 0] += 1
        values[0, :] += 1
    dtype = draw(st.sampled_from(["float32", "float64", "int32"]))
    if dtype == "int32":
        values = np.nan_to_num(values, nan=0, posinf=0, neginf=0)
    matrix = values.astype(dtype)
    if draw(st.booleans()):
        matrix = sp.csr_matrix(matrix)
    names = st.lists(CLEAN_LABEL if clean else LABEL, min_size=n_genes, max_size=n_genes)
    genes = draw(names.filter(lambda v: len(set(v)) == len(v)) if clean else names)
    adata = ad.AnnData(
        X=matrix,
        obs=pd.DataFrame(index=[f"c{i}" for i in range(n_cells)]),
        var=pd.DataFrame(index=[str(g) for g in genes]),
    )
    if not clean:
        keys = st.sampled_from(["name", "species", "tissue", "modality", "technology"])
        adata.uns["dataset"] = draw(st.dictionaries(keys, LABEL, max_size=5))
        columns = draw(st.sampled_from([None, 1, 2, 3]))
        if columns:
            coords = draw(
                st.lists(
                    st.floats(allow_nan=True, allow_infinity=True, width=32),
                    min_size=n_cells * columns,
                    max_size=n_cells * columns,
                )
            )
            adata.obsm["spatial"] = np.array(coords, dtype=float).reshape(n_cells, columns)
        if draw(st.booleans()):
            adata.layers["counts"] = sp.csr_matrix(np.abs(np.nan_to_num(values)).round())
        if draw(st.booleans()):
            adata.uns["simulated"] = draw(st.sampled_from([True, "yes", np.arange(3)]))
    return adata, clean


# ----------------------------------------------------------- property tests
@settings(FUZZ_SETTINGS, max_examples=50)
@given(table=tables())
def test_generated_tables(ws, tmp_path, table):
    text, suffix, expected = table
    path = tmp_path / f"table{suffix}"
    if suffix.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8", newline="")
    options = {"limits": SMALL, "orientation": "genes-by-cells", "species": "human"}
    outcome = import_once(ws, path, **options)
    if expected is not None:
        counts, cells, genes = expected
        assert outcome == "imported"
        stored = ws.load_dataset(ws.dataset_names()[-1])
        assert list(stored.obs_names) == cells and list(stored.var_names) == genes
        np.testing.assert_array_equal(stored.X.toarray(), counts)


@settings(FUZZ_SETTINGS, max_examples=50)
@given(files=mtx_folders())
def test_generated_10x_folders(ws, tmp_path, files):
    folder = tmp_path / "tenx"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for name, text in files.items():
        data = text.encode("utf-8")
        (folder / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    import_once(ws, folder, limits=SMALL, species="human")


@settings(FUZZ_SETTINGS, max_examples=15)
@given(generated=anndatas())
def test_generated_h5ad(ws, tmp_path, generated):
    adata, clean = generated
    path = tmp_path / "gen.h5ad"
    adata.write_h5ad(path)
    outcome = import_once(ws, path, limits=SMALL, species="human", modality="scrna")
    if clean:
        assert outcome == "imported"
        stored = ws.load_dataset(ws.dataset_names()[-1])
        np.testing.assert_array_equal(
            stored.X.toarray(), np.asarray(adata.X.todense() if sp.issparse(adata.X) else adata.X)
        )


GMT_FIELD = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12
) | st.sampled_from(["", " ", "GENE,1.0", "\u00a0", "\r"])


@st.composite
def gmt_bytes(draw):
    """Raw bytes, or text lines of fields joined by tabs (sometimes other separators)."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=400))
    lines = draw(st.lists(st.lists(GMT_FIELD, max_size=8), max_size=12))
    sep = draw(st.sampled_from(["\t", "\t", " ", ","]))
    text = draw(st.sampled_from(["\n", "\r\n", "\r"])).join(sep.join(f) for f in lines)
    return text.encode(draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16"])), "replace")


@settings(FUZZ_SETTINGS, max_examples=300)
@given(data=gmt_bytes())
def test_generated_gmt_files(tmp_path, data):
    """A GMT file gives named, non-empty gene sets, or one readable InputFileError."""
    path = tmp_path / "library.gmt"
    path.write_bytes(data)
    try:
        sets = read_gmt(path)
    except InputFileError as exc:
        assert str(exc).strip() and "Traceback" not in str(exc)
        return
    assert sets and all(name.strip() for name in sets)
    for genes in sets.values():
        assert genes and all(g.strip() and "\t" not in g for g in genes)
        assert len(genes) == len(set(genes))


# ------------------------------------------------------------ mutation run
def mutate(data: bytes, rng: random.Random, gzipped: bool) -> tuple[bytes, str]:
    """One random damage: truncation, bit flips, inserted garbage or a zeroed block.

    For gzip files the damage is done half of the time inside the stream and the result
    compressed again, so the parser (not only the gzip checksum) meets it.
    """
    inner = gzipped and rng.random() < 0.5
    if inner:
        data = gzip.decompress(data)
    data = bytearray(data)
    kind = rng.choice(["truncate", "flip", "insert", "zero"])
    if kind == "truncate":
        del data[rng.randrange(len(data)) :]
    elif kind == "flip":
        for _ in range(rng.randint(1, 16)):
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
    elif kind == "insert":
        i = rng.randrange(len(data) + 1)
        data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    else:
        i = rng.randrange(len(data))
        n = rng.randint(1, 512)
        data[i : i + n] = bytes(len(data[i : i + n]))
    out = bytes(data)
    return (gzip.compress(out) if inner else out), kind + (" (inside gzip)" if inner else "")


def mutation_run(ws: Workspace, seeds: dict[str, Path], tmp: Path, n_cases: int, seed: int):
    """Import ``n_cases`` damaged copies of the seed files (a file or a 10x folder each)."""
    rng = random.Random(seed)
    outcomes = []
    for case in range(n_cases):
        label, source = rng.choice(sorted(seeds.items()))
        target = tmp / f"case{case}"
        if source.is_dir():
            shutil.copytree(source, target)
            victim = target / rng.choice(sorted(p.name for p in source.iterdir()))
            path = target
        else:
            target.mkdir()
            victim = path = target / source.name
            shutil.copyfile(source, victim)
        damaged, kind = mutate(victim.read_bytes(), rng, victim.name.endswith(".gz"))
        victim.write_bytes(damaged)
        try:
            outcome = import_once(ws, path, species="human")
        except AssertionError as exc:
            raise AssertionError(f"case {case}: {label} / {victim.name}, {kind}: {exc}") from exc
        outcomes.append((label, kind, outcome))
        shutil.rmtree(target)
    return outcomes


def factory_seeds(folder: Path) -> dict[str, Path]:
    counts = make_counts(n_cells=40, n_genes=30)
    folder.mkdir()
    plain = write_h5ad(counts, folder / "plain.h5ad", {"tissue": "blood"})
    packed = folder / "packed.h5ad"
    counts.write_h5ad(packed, compression="gzip")
    return {
        "h5ad": plain,
        "h5ad-gzip": packed,
        "10x-h5": write_10x_h5(counts, folder / "m.h5"),
        "10x-folder": write_10x_mtx(counts, folder / "tenx", "v3"),
        "csv": write_table(counts, folder / "t.csv"),
        "tsv.gz": write_table(counts, folder / "t.tsv.gz"),
    }


@pytest.mark.timeout(300, method="thread")
def test_mutated_factory_files(ws, tmp_path):
    seeds = factory_seeds(tmp_path / "seeds")
    for source in seeds.values():  # the undamaged seeds import
        assert import_once(ws, source, species="human") == "imported"
    outcomes = mutation_run(ws, seeds, tmp_path, n_cases=40, seed=1)
    refused = sum(o == "refused" for _, _, o in outcomes)
    print(f"{len(outcomes)} mutated factory files: {refused} refused, the rest imported")
    assert refused >= len(outcomes) // 2  # damage is mostly detected, not silently accepted


def real_seeds(shared: Path, folder: Path) -> dict[str, Path]:
    """Small subsets of real files: a spatial h5ad, the PBMC 10x folder, a table and a .h5."""
    folder.mkdir()
    spatial = ad.read_h5ad(shared / "atlas" / "spatial_human_breast_cancer_st.h5ad")
    keep = np.argsort(-np.asarray(spatial.X.sum(axis=0)).ravel())[:150]
    spatial = spatial[:60, np.sort(keep)].copy()
    spatial.write_h5ad(folder / "spatial.h5ad", compression="gzip")

    source = shared / "formats" / "pbmc3k_10x_v3_mtx"
    with gzip.open(source / "matrix.mtx.gz", "rb") as handle:
        genes_by_cells = scipy.io.mmread(handle).tocsr()
    features = pd.read_csv(source / "features.tsv.gz", sep="\t", header=None, dtype=str)
    barcodes = pd.read_csv(source / "barcodes.tsv.gz", sep="\t", header=None, dtype=str)
    genes = np.sort(np.argsort(-np.asarray(genes_by_cells.sum(axis=1)).ravel())[:150])
    subset = genes_by_cells[genes][:, :80]
    tenx = folder / "pbmc_mtx"
    tenx.mkdir()
    with gzip.open(tenx / "matrix.mtx.gz", "wb") as handle:
        scipy.io.mmwrite(handle, subset.astype(np.int64))
    features.iloc[genes].to_csv(tenx / "features.tsv.gz", sep="\t", header=False, index=False)
    barcodes.iloc[:80].to_csv(tenx / "barcodes.tsv.gz", sep="\t", header=False, index=False)

    cells = ad.AnnData(
        X=sp.csr_matrix(subset.T.astype(np.float32)),
        obs=pd.DataFrame(index=barcodes[0].iloc[:80].to_numpy()),
        var=pd.DataFrame(index=pd.Index(features[1].iloc[genes].to_numpy()).astype(str)),
    )
    cells.var_names_make_unique()
    return {
        "real spatial h5ad": folder / "spatial.h5ad",
        "real 10x folder": tenx,
        "real csv": write_table(cells, folder / "pbmc.csv"),
        "real 10x h5": write_10x_h5(cells, folder / "pbmc.h5"),
    }


@requires_shared_data
@pytest.mark.timeout(300, method="thread")
def test_mutated_real_files(ws, tmp_path, shared_data):
    seeds = real_seeds(shared_data, tmp_path / "seeds")
    for source in seeds.values():
        assert import_once(ws, source, species="human") == "imported"
    outcomes = mutation_run(ws, seeds, tmp_path, n_cases=30, seed=2)
    refused = sum(o == "refused" for _, _, o in outcomes)
    print(f"{len(outcomes)} mutated real files: {refused} refused, the rest imported")
    assert refused >= len(outcomes) // 2

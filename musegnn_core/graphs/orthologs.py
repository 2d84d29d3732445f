"""Human-mouse ortholog mapping, so that graphs of both species share gene names.

MuSe-GNN's cross-dataset losses match nodes by gene name; mouse symbols (Actb)
never equal human ones (ACTB), so mouse genes are renamed to their human orthologs.
Only unambiguous one-to-one pairs are used: a many-to-one mapping would merge
distinct mouse genes into one human node (or split one), which the graph cannot
represent.

The HCOP table lists every pair predicted by any of 12 orthology databases, with
``support_n`` = how many agree. Weakly supported paralog hits (A2M-Mug1 in 3 of 12
databases next to A2M-A2m in 10) would make most genes look one-to-many, so pairs
are first reduced to each gene's best-supported partners (see
:func:`keep_best_supported`), then only pairs unique on both sides are kept.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InputFileError
from ..metadata import SPECIES, normalise_choice
from ..paths import shared_data_dir

REQUIRED_COLUMNS = ("human_symbol", "mouse_symbol")
HCOP_FILE = "orthologs/human_mouse_orthologs_hcop.tsv.gz"


def default_ortholog_table_path() -> Path | None:
    """The HCOP table in the shared data folder, or None when that folder is absent."""
    shared = shared_data_dir()
    path = shared / HCOP_FILE if shared is not None else None
    return path if path is not None and path.is_file() else None


def separator_for(path: Path) -> str:
    """Comma for ``.csv``/``.csv.gz``, tab otherwise (``.tsv``, ``.txt``)."""
    suffixes = [s.lower() for s in path.suffixes]
    return "," if ".csv" in suffixes else "\t"


def load_ortholog_table(path) -> pd.DataFrame:
    """Read a human-mouse ortholog table: columns human_symbol, mouse_symbol[, support_n].

    Tab- or comma-separated, optionally gzipped. Rows with a missing symbol are
    dropped, symbols are stripped, exact duplicate pairs collapsed. Raises
    InputFileError when the file is missing, unreadable or lacks the two symbol
    columns, so the user sees what to fix.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"Ortholog table not found: {path}")
    try:
        raw = pd.read_csv(path, sep=separator_for(path), dtype=str, keep_default_na=True)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputFileError(f"Cannot read ortholog table {path}: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise InputFileError(
            f"Ortholog table {path.name} lacks column(s) {', '.join(missing)}; "
            f"found {', '.join(map(str, raw.columns[:10]))}. Expected human_symbol and "
            "mouse_symbol (and optionally support_n)."
        )
    table = tidy_table(raw)
    if table.empty:
        raise InputFileError(f"Ortholog table {path.name} has no usable human-mouse pairs.")
    return table


def tidy_table(raw: pd.DataFrame) -> pd.DataFrame:
    """Keep the symbol (and support) columns, strip, drop blanks and duplicate pairs."""
    columns = [*REQUIRED_COLUMNS, *(["support_n"] if "support_n" in raw.columns else [])]
    table = raw[columns].copy()
    for col in REQUIRED_COLUMNS:
        table[col] = table[col].astype("string").str.strip()
    table = table.dropna(subset=list(REQUIRED_COLUMNS))
    table = table[(table["human_symbol"] != "") & (table["mouse_symbol"] != "")]
    if "support_n" in table.columns:
        table["support_n"] = pd.to_numeric(table["support_n"], errors="coerce").fillna(0)
        table = table.sort_values("support_n", ascending=False, kind="stable")
    table = table.drop_duplicates(subset=list(REQUIRED_COLUMNS), keep="first")
    for col in REQUIRED_COLUMNS:
        table[col] = table[col].astype(object)
    return table.reset_index(drop=True)


def keep_best_supported(table: pd.DataFrame) -> pd.DataFrame:
    """Pairs that are among the best-supported for their human AND their mouse gene.

    Rule: for every human gene keep only its pairs with the maximal ``support_n``, and
    likewise for every mouse gene; a pair survives when it is maximal on both sides.
    Ties survive here and are removed by the one-to-one step, so a gene whose two
    best candidates are equally supported stays unmapped rather than guessed.
    """
    support = table["support_n"]
    best_h = support.eq(table.groupby("human_symbol")["support_n"].transform("max"))
    best_m = support.eq(table.groupby("mouse_symbol")["support_n"].transform("max"))
    return table[best_h & best_m]


def one_to_one_orthologs(table: pd.DataFrame) -> pd.DataFrame:
    """Pairs whose human symbol maps to exactly one mouse symbol and vice versa.

    When ``support_n`` is present, :func:`keep_best_supported` runs first (on the HCOP
    table this turns ~13k ambiguous human genes into usable 1:1 pairs). Idempotent:
    a one-to-one table comes back unchanged.
    """
    table = tidy_table(table)
    if "support_n" in table.columns:
        table = keep_best_supported(table)
    unique_h = ~table["human_symbol"].duplicated(keep=False)
    unique_m = ~table["mouse_symbol"].duplicated(keep=False)
    return table[unique_h & unique_m].reset_index(drop=True)


def one_to_one_lookup(table: pd.DataFrame) -> pd.Series:
    """Mouse symbol -> human symbol over the one-to-one pairs of ``table``."""
    pairs = one_to_one_orthologs(table)
    return pd.Series(pairs["human_symbol"].to_numpy(), index=pairs["mouse_symbol"].to_numpy())


@functools.lru_cache(maxsize=4)
def _lookup_of_file(path: str, mtime_ns: int, size: int) -> pd.Series:
    return one_to_one_lookup(load_ortholog_table(path))


def ortholog_lookup(path) -> pd.Series:
    """:func:`one_to_one_lookup` of the table file at ``path``, read once per process while
    the file stays unchanged (a graph build maps each mouse dataset's genes twice, and
    reading and reducing the HCOP table takes about 0.4 s). Treat it as read-only."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"Ortholog table not found: {path}")
    stat = path.stat()
    return _lookup_of_file(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def map_genes_to_human(
    gene_names: Sequence[str], species: str, table: pd.DataFrame | pd.Series | None = None
) -> pd.DataFrame:
    """One row per input gene: ``original`` and ``human`` (None where unmapped).

    Mouse genes are mapped through the one-to-one orthologs of ``table`` (exact,
    case-sensitive symbol match); ``table`` may also be a ready lookup
    (:func:`ortholog_lookup`). Human genes map to themselves. Genes of "other"
    species are kept unchanged, as there is no table for them.
    """
    key = normalise_choice(species, SPECIES, "species")
    original = pd.Series(np.asarray(gene_names, dtype=object), name="original")
    if key != "mouse":
        return pd.DataFrame({"original": original, "human": original.copy()})
    if table is None:
        raise InputFileError("Mapping mouse genes to human needs an ortholog table.")
    lookup = table if isinstance(table, pd.Series) else one_to_one_lookup(table)
    human = original.map(lookup)
    human = human.astype(object).where(human.notna(), None)
    return pd.DataFrame({"original": original, "human": human})

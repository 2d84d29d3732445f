"""Why a gene is not in a run's embedding, and which genes of the run to look at instead.

A gene is embedded only where a dataset's graph kept it: the raw counts must hold it, QC
must keep it (not mitochondrial, counts in enough cells), and it must be among the genes
selected for the graph (the most variable, or spatially variable, ones). This module
says, per dataset of the run, which of these steps it failed, and suggests genes that are
in the run and related to the query: the same symbol family ("MKI67" -> genes starting
with "MKI") or, for a mouse symbol, its human ortholog. Letter-similar strangers are
never suggested.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import ValidationError

_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")


@dataclass
class MissingGene:
    """What became of a gene that is not in the run's embedding."""

    gene: str
    datasets: pd.DataFrame  # dataset, symbol, species, cells, counts, reason
    summary: str
    suggestions: list[dict] = field(default_factory=list)  # gene, why, n_datasets


def symbol_family(gene: str) -> str:
    """The family stem of a symbol: the letters before its first digit ("MKI67" -> "MKI",
    "HLA-DRB1" -> "HLA-DRB", "CD74" -> "CD"); a symbol without digits loses its last
    letter ("ACTB" -> "ACT"). Empty when the stem would be under two letters."""
    text = str(gene).upper()
    match = re.match(r"^([A-Z][A-Z\-]*?)-?\d", text)
    stem = match.group(1) if match else (text[:-1] if len(text) >= 4 else "")
    return stem if len(stem) >= 2 else ""


def suggest_genes(
    query: str, run_genes: Sequence[str], counts: pd.Series | None = None, top: int = 6
) -> list[dict]:
    """Genes of the run related to ``query``: the same symbol in another case, else members
    of its symbol family, most widely shared first (``counts``: datasets per gene)."""
    genes = list(dict.fromkeys(map(str, run_genes)))
    upper = query.upper()
    same = [g for g in genes if g.upper() == upper and g != query]
    out = [{"gene": g, "why": "the same symbol, another case"} for g in same]
    stem = symbol_family(query)
    if stem:
        family = [
            g
            for g in genes
            if g.upper().startswith(stem)
            and g.upper() != upper
            and g not in same
            # the stem must be followed by a digit, a hyphen or the end, so that "CD" matches
            # CD3E and CD74 but not CDK1 or CDH1.
            and (len(g) == len(stem) or not g[len(stem)].isalpha() or len(stem) >= 3)
        ]
        if counts is not None:
            family.sort(key=lambda g: (-int(counts.get(g, 0)), g))
        else:
            family.sort()
        out += [{"gene": g, "why": f"same symbol family ({stem}…)"} for g in family]
    if counts is not None:
        for item in out:
            item["n_datasets"] = int(counts.get(item["gene"], 0))
    return out[:top]


def _raw_column(path, symbol_index: int) -> np.ndarray:
    """One gene's counts in a stored dataset, read without loading the whole matrix."""
    import anndata as ad

    data = ad.read_h5ad(path, backed="r")
    try:
        column = data.X[:, [symbol_index]]
    finally:
        data.file.close()
    if hasattr(column, "toarray"):
        column = column.toarray()
    return np.asarray(column, dtype=float).ravel()


def _var_names(path) -> list[str]:
    import anndata as ad

    data = ad.read_h5ad(path, backed="r")
    try:
        return [str(v) for v in data.var_names]
    finally:
        data.file.close()


def explain_missing_gene(workspace, run, gene: str, run_genes: Sequence[str]) -> MissingGene:
    """Per dataset of ``run``: does its raw counts hold ``gene`` (a human symbol, or a
    mouse symbol for mouse data), and why it is not in the graph."""
    from ..graphs.build import ortholog_table_path
    from ..graphs.orthologs import ortholog_lookup
    from ..graphs.qc import is_mitochondrial
    from .annotate import run_graph_adjacency

    gene = str(gene).strip()
    if not _SYMBOL.match(gene):
        raise ValidationError(f"{gene[:40]!r} is not a gene symbol.")
    graphs = run_graph_adjacency(workspace, run)
    config = run.config()
    metas = {m.name: m for m in workspace.datasets()}
    lookup = None  # mouse symbol -> human symbol, read once (and cached per process)
    rows = []
    for dataset in config.get("datasets", []):
        meta = metas.get(dataset)
        if meta is None:
            rows.append({"dataset": dataset, "reason": "dataset no longer in the workspace"})
            continue
        names = _var_names(workspace.dataset_path(dataset))
        candidates = [gene]
        if meta.species == "mouse":
            if lookup is None:
                path = ortholog_table_path(workspace)
                lookup = ortholog_lookup(path) if path else pd.Series(dtype=object)
            candidates = [*lookup.index[lookup.to_numpy() == gene], gene]
        where = {n: i for i, n in enumerate(names)}
        upper = {n.upper(): n for n in names}
        symbol = next((c for c in candidates if c in where), None)
        if symbol is None:
            symbol = next((upper[c.upper()] for c in candidates if c.upper() in upper), None)
        if symbol is None:
            continue  # this dataset's raw counts do not hold the gene
        counts = _raw_column(workspace.dataset_path(dataset), where[symbol])
        graph = graphs.get(dataset)
        info = {}
        if graph is not None:
            from ..storage import read_json

            folder = workspace.graphs_dir / dataset
            fingerprint = dict(zip(config["datasets"], config["graph_fingerprints"], strict=True))
            info = read_json(folder / fingerprint[dataset] / "graph.json", {}) or {}
        min_cells = int(info.get("qc", {}).get("config", {}).get("min_cells", 3))
        n_genes = int(info.get("n_genes", 0)) or (len(graph.genes) if graph else 0)
        cells = int((counts > 0).sum())
        if graph is not None and gene in graph.genes:
            reason = "in this dataset's graph"
        elif counts.sum() == 0:
            reason = "not expressed: no counts in this dataset"
        elif bool(is_mitochondrial([symbol], meta.species)[0]):
            reason = "removed by QC filters: a mitochondrial gene"
        elif cells < min_cells:
            reason = f"removed by QC filters: counts in {cells} cells (at least {min_cells} needed)"
        elif meta.species == "mouse" and symbol not in lookup.index:
            reason = "no one-to-one human ortholog, and not among the genes selected for the graph"
        else:
            reason = (
                f"not among the {n_genes} genes selected for this dataset's graph "
                "(the most variable ones)"
            )
        rows.append(
            {
                "dataset": dataset,
                "symbol": symbol,
                "species": meta.species,
                "cells": cells,
                "counts": round(counts.sum()),
                "reason": reason,
            }
        )
    table = pd.DataFrame(
        rows, columns=["dataset", "symbol", "species", "cells", "counts", "reason"]
    )
    held = table.dropna(subset=["symbol"]) if len(table) else table
    n_run = len(config.get("datasets", []))
    if held.empty:
        summary = f"{gene} is in none of the raw counts of the run's {n_run} datasets."
    else:
        kinds = held["reason"].str.split(":").str[0].str.split(" \\(").str[0]
        kinds = kinds.str.replace(
            r"not among the \d+ genes.*", "not among the selected genes", regex=True
        )
        why = "; ".join(f"{k} in {n}" for k, n in kinds.value_counts().items())
        summary = (
            f"{gene} is in the raw counts of {len(held)} of the run's {n_run} datasets "
            f"({', '.join(held['dataset'])}) but not in its embedding: {why}."
        )
    return MissingGene(gene, table, summary)

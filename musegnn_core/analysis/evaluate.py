"""Evaluate a run against baselines on the same graphs: the table of metrics x methods."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import anndata as ad
import pandas as pd

from ..errors import ValidationError
from ..graphs.build import GeneGraph, load_graph
from ..paths import shared_data_dir
from ..runs import Run, get_run
from ..storage import atomic_path, atomic_write_json
from ..workspace import Workspace, now_iso
from .baselines import gae_embedding, pca_embedding, random_embedding
from .coherence import (
    GeneBlocks,
    coexpression_blocks,
    embedding_blocks,
    function_scores,
    profile_blocks,
)
from .functional import function_prediction_auroc, geneset_coherence_auroc
from .genesets import read_gmt
from .libraries import library_name
from .metrics import METRICS, evaluate_embedding

#: Baselines without an embedding: gene-level similarities straight from the residuals.
CORRELATION_BASELINES: dict[str, Callable[..., GeneBlocks]] = {
    "coexpression": coexpression_blocks,  # the residual correlations themselves
    "profile": profile_blocks,  # correlations of co-expression profiles
}
BASELINES: dict[str, Callable[..., ad.AnnData] | None] = {
    **dict.fromkeys(CORRELATION_BASELINES),
    "pca": pca_embedding,
    "gae": gae_embedding,
    "random": random_embedding,
}
DEFAULT_LIBRARIES = (
    "human_msigdb_hallmark_v7.0.symbols.gmt",
    "human_enrichr_GO_Biological_Process_2021.gmt",
)


def default_gene_set_paths() -> list[Path]:
    """The shared Hallmark and GO BP libraries, when the shared data are present."""
    shared = shared_data_dir()
    if shared is None:
        return []
    return [p for p in (shared / "genesets" / n for n in DEFAULT_LIBRARIES) if p.exists()]


def run_graphs(workspace: Workspace, run: Run) -> dict[str, GeneGraph]:
    """The exact graphs a run was trained on (by fingerprint)."""
    config = run.config()
    return {
        d: load_graph(workspace, d, f)
        for d, f in zip(config["datasets"], config["graph_fingerprints"], strict=True)
    }


def load_embedding(run: Run) -> ad.AnnData:
    if not run.embeddings_path.exists():
        raise ValidationError(
            f"Run {run.name} has no embeddings yet (state: "
            f"{run.status().get('state', 'unknown')}); finish or resume it first."
        )
    return ad.read_h5ad(run.embeddings_path)


def score_embedding(
    embedding: ad.AnnData, graphs: dict, libraries: dict[str, dict], seed: int
) -> dict[str, float]:
    """The paper's six metrics, then the gene-level measures of :mod:`.coherence`."""
    scores = evaluate_embedding(embedding, graphs, seed=seed)
    row = {m: scores[m] for m in METRICS}
    row["mean_of_six"] = scores["mean_of_six"]
    for name, sets in libraries.items():
        row[f"coherence:{name}"] = geneset_coherence_auroc(embedding, sets, seed=seed)
        row[f"prediction:{name}"] = function_prediction_auroc(embedding, sets, seed=seed)
    row.update(function_scores(embedding_blocks(embedding), graphs, libraries, seed=seed))
    row["_rule"] = scores["common_gene_rule"]
    return row


def score_correlations(
    method: str, graphs: dict, libraries: dict[str, dict], seed: int
) -> dict[str, float]:
    """A no-learning baseline of :data:`CORRELATION_BASELINES`: its gene-level measures (the
    embedding metrics need one space for all datasets, which correlations do not have)."""
    row = function_scores(CORRELATION_BASELINES[method](graphs), graphs, libraries, seed=seed)
    row["_rule"] = None
    return row


def evaluate_run(
    workspace: Workspace,
    run_name: str,
    baselines: Sequence[str] | None = None,
    gene_set_paths: Sequence[str | Path] | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Score the run and each baseline (``None``: every one of :data:`BASELINES`); write
    ``evaluation.json``/``.csv`` into the run."""
    baselines = tuple(BASELINES) if baselines is None else tuple(baselines)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValidationError(f"seed must be a whole number from 0 to 2**32 - 1, not {seed!r}.")
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ValidationError(
            f"Unknown baseline {unknown[0]!r}: choose from {', '.join(BASELINES)}."
        )
    run = get_run(workspace, run_name)
    embedding = load_embedding(run)
    graphs = run_graphs(workspace, run)
    paths = (
        default_gene_set_paths() if gene_set_paths is None else [Path(p) for p in gene_set_paths]
    )
    libraries = {library_name(p): read_gmt(p) for p in paths}
    say = progress or (lambda message: None)
    start = time.perf_counter()
    columns, notes = {}, set()
    for method in ("musegnn", *baselines):
        say(f"scoring {method}")
        if method in CORRELATION_BASELINES:
            row = score_correlations(method, graphs, libraries, seed)
        else:
            table = embedding if method == "musegnn" else BASELINES[method](graphs, seed=seed)
            row = score_embedding(table, graphs, libraries, seed)
        rule = row.pop("_rule")
        if rule:
            notes.add(rule)
        columns[method] = row
    frame = pd.DataFrame(columns)
    seconds = time.perf_counter() - start
    atomic_write_json(
        run.evaluation_path,
        {
            "created_at": now_iso(),
            "seconds": round(seconds, 2),
            "seed": seed,
            "gene_sets": [str(p) for p in paths],
            "common_gene_rule": sorted(notes),
            "table": {
                m: {
                    k: (None if isinstance(v, float) and math.isnan(v) else v)
                    for k, v in col.items()
                }
                for m, col in columns.items()
            },
        },
    )
    with atomic_path(run.root / "evaluation.csv") as tmp:
        frame.to_csv(tmp)
    frame.attrs.update(seconds=seconds, common_gene_rule=sorted(notes))
    return frame

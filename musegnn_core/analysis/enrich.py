"""Over-representation analysis of a gene selection against GMT libraries (gseapy, offline).

The background is the set of genes in the run's graphs, not the genome: a gene that
could never have been selected must not count as a "miss". Mouse genes are already
named by their human ortholog in the graphs, so human libraries apply to them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..errors import ValidationError
from .genesets import read_gmt
from .libraries import library_name

RESULT_COLUMNS = [
    "library",
    "term",
    "overlap",
    "n_overlap",
    "set_size",
    "p_value",
    "adjusted_p_value",
    "odds_ratio",
    "genes",
]


def enrich_genes(
    genes: Iterable[str],
    gene_sets: Mapping[str, Sequence[str]],
    background: Iterable[str],
    library: str = "",
) -> pd.DataFrame:
    """Hypergeometric test of ``genes`` against each set, within ``background``.

    Returns one row per set sharing at least one gene with the selection, sorted by
    p-value, with Benjamini-Hochberg adjusted p-values over the sets tested.
    """
    import gseapy

    universe = {str(g) for g in background}
    selection = sorted({str(g) for g in genes} & universe)
    if not selection:
        raise ValidationError("None of the selected genes is in the run's graphs; nothing to test.")
    sets = {name: sorted(set(members) & universe) for name, members in gene_sets.items()}
    sets = {name: members for name, members in sets.items() if members}
    if not sets:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    result = gseapy.enrich(
        gene_list=selection,
        gene_sets=sets,
        background=sorted(universe),
        outdir=None,
        cutoff=1.0,
        no_plot=True,
    ).results
    # gseapy gives an empty list, not a frame, when no set overlaps the selection.
    if not isinstance(result, pd.DataFrame) or result.empty:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    overlap = result["Overlap"].str.split("/", expand=True).astype(int)
    frame = pd.DataFrame(
        {
            "library": library,
            "term": result["Term"],
            "overlap": result["Overlap"],
            "n_overlap": overlap[0],
            "set_size": overlap[1],
            "p_value": result["P-value"],
            "adjusted_p_value": result["Adjusted P-value"],
            "odds_ratio": result["Odds Ratio"],
            "genes": result["Genes"],
        }
    )
    return frame.sort_values(["p_value", "term"], kind="stable").reset_index(drop=True)


def enrich_libraries(
    genes: Iterable[str], paths: Sequence[str | Path], background: Iterable[str]
) -> pd.DataFrame:
    """:func:`enrich_genes` against each GMT file; one table, sorted by p-value."""
    if not paths:
        raise ValidationError("Give at least one gene-set library (.gmt).")
    genes, background = list(genes), list(background)
    frames = [enrich_genes(genes, read_gmt(p), background, library=library_name(p)) for p in paths]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=RESULT_COLUMNS)
    return pd.concat(frames, ignore_index=True).sort_values("p_value", kind="stable")


def selection_genes(
    embedding, cluster: str | None = None, genes: Sequence[str] | None = None, labels=None
) -> list[str]:
    """The genes of a Leiden cluster, or an explicit list (exactly one of the two).

    ``labels`` are the cluster labels to use (see :func:`clusters.run_clustering`);
    by default the run's own ``obs['leiden']``.
    """
    from .clusters import cluster_genes

    if (cluster is None) == (genes is None):
        raise ValidationError("Give either a cluster or a list of genes.")
    if genes is not None:
        return sorted({str(g) for g in genes})
    if labels is None:
        labels = embedding.obs["leiden"].astype(str)
    return sorted(cluster_genes(embedding, labels, str(cluster)))


def enrich_run(
    workspace,
    run_name: str,
    *,
    cluster: str | None = None,
    genes: Sequence[str] | None = None,
    gene_set_paths: Sequence[str | Path] = (),
    resolution: float | None = None,
) -> pd.DataFrame:
    """Enrichment of a cluster (at ``resolution``) or gene list of a run, against its graphs' genes."""
    from ..runs import get_run
    from .clusters import run_clustering
    from .evaluate import load_embedding

    run = get_run(workspace, run_name)
    embedding = load_embedding(run)
    labels = run_clustering(run, embedding, resolution).labels if cluster is not None else None
    selection = selection_genes(embedding, cluster, genes, labels=labels)
    return enrich_libraries(selection, list(gene_set_paths), run_background(workspace, run))


def run_background(workspace, run) -> set[str]:
    """The genes any of the run's graphs could have offered: the enrichment universe."""
    from .evaluate import run_graphs

    return {g for graph in run_graphs(workspace, run).values() for g in graph.genes}

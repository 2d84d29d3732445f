"""A plain-language reading of the benchmark table: what each score rewards, and what the
baselines' scores mean (why a random embedding scores high on the mixing metrics)."""

from __future__ import annotations

import math

import pandas as pd

#: What each row of the evaluation rewards, in words a biologist can repeat.
METRIC_READING = {
    "asw": "mixing: inside each cluster, the same genes from different datasets are not "
    "separated by dataset (1 = perfectly mixed). It does not ask whether the right genes "
    "are together.",
    "auc": "structure: genes joined by a co-expression edge in a dataset are closer in the "
    "embedding than genes that are not (0.5 = chance).",
    "ilisi": "mixing: the nearest neighbours of a common gene come from many datasets "
    "(1 = as mixed as possible). Like ASW, it ignores which genes are neighbours.",
    "gc": "cohesion: inside each cluster, the common genes form one connected neighbourhood "
    "rather than dataset-specific islands.",
    "cgr": "cross-dataset agreement: a cluster holds the same gene from several datasets "
    "(the instances of a gene land together).",
    "no": "cross-dataset agreement: genes of different datasets that share a cluster also "
    "share co-expression partners in their graphs.",
    "mean_of_six": "the average of the six paper metrics; undefined if one of them is.",
    "mean_of_defined": "the average of those of the six metrics that are defined here.",
    "coherence": "function: genes that share a gene set (Hallmark, GO) are closer in the "
    "embedding than genes that do not (AUROC; 0.5 = chance).",
    "prediction": "function: a gene's gene sets can be predicted from its nearest genes "
    "(cross-validated AUROC; 0.5 = chance).",
    "coherence_within": "function inside each dataset: genes sharing a gene set are closer "
    "than genes sharing none, judged where a dataset holds both (AUROC; 0.5 = chance). "
    "Co-expression itself is the bar to beat.",
    "coherence_per_dataset": "function inside each dataset on its own: each dataset's AUROC "
    "over the pairs it holds, averaged over datasets. Unlike 'within', no pair's score is an "
    "average over datasets, so a method whose datasets err independently gains nothing.",
    "coherence_unified": "function after integration: the same, with each gene's mean "
    "embedding over its datasets (one vector per gene), for every pair of genes. "
    "Co-expression profiles, which compare genes across datasets without learning, are the "
    "bar to beat.",
    "coherence_within_matched": "function beyond the genes themselves: as 'within', but the "
    "pairs sharing no set re-pair the genes of the pairs that share one, so a property of "
    "single genes (how expressed, how connected, how well studied: well-annotated genes "
    "share some set with more genes) scores 0.5, and only which genes belong together counts.",
    "coherence_unified_matched": "function beyond the genes themselves, after integration: as "
    "'unified', but the pairs sharing no set re-pair the genes of the pairs that share one, so "
    "a property of single genes scores 0.5, and only which genes belong together counts.",
    "coherence_within_per_set": "function inside each dataset, every gene set weighing the "
    "same: as 'within', but each pair sharing a set is drawn by a set first, then two of its "
    "genes, so a library's broad terms (which hold most gene pairs) count no more than its "
    "specific processes.",
    "coherence_unified_per_set": "function after integration, every gene set weighing the "
    "same: as 'unified', but each pair sharing a set is drawn by a set first, then two of its "
    "genes, so a library's broad terms count no more than its specific processes.",
    "edge_auc": "structure: a dataset's co-expression edges are closer in the embedding than "
    "non-edges (AUROC; 0.5 = chance).",
    "edge_auc_median": "structure: the median over datasets of the edge AUROC.",
    "edge_auc_min": "structure: the worst dataset's edge AUROC.",
    "same_gene_cosine": "cross-dataset agreement: median cosine between one gene's instances in "
    "different datasets (0 = unrelated; high everywhere if the embedding is a narrow cone).",
    "same_gene_percentile": "cross-dataset agreement: where a gene's instance in another "
    "dataset ranks among that dataset's rows (0 = the nearest; 0.5 = chance; lower is better).",
    "same_gene_top1": "cross-dataset agreement: how often a gene's nearest row in another "
    "dataset is the same gene.",
}
MIXING = ("asw", "ilisi")
STRUCTURE = ("auc", "cgr", "no")


def metric_reading(key: str) -> str:
    """What the row ``key`` of an evaluation rewards ("asw", "coherence:hallmark",
    "edge_auc[pbmc]", "coherence_within[2]:hallmark", ...)."""
    name = key.partition(":")[0]
    if name in METRIC_READING:
        return METRIC_READING[name]
    base, bracket, inside = name.partition("[")
    inside = inside.rstrip("]")
    weighing = ", every gene set weighing the same" if base.endswith("_per_set") else ""
    if base in ("coherence_within", "coherence_within_per_set") and bracket:
        return (
            f"function inside datasets{weighing}, for gene pairs held together by {inside} "
            "dataset(s) (AUROC; 0.5 = chance)."
        )
    if base in ("coherence_unified", "coherence_unified_per_set") and bracket:
        together = (
            "held together by no dataset"
            if inside == "0"
            else f"held together by {inside} dataset(s)"
        )
        return (
            f"function after integration{weighing}, for gene pairs {together} "
            "(AUROC; 0.5 = chance)."
        )
    if base in ("coherence_within_by_set_size", "coherence_unified_by_set_size"):
        where = "inside datasets" if base.startswith("coherence_within") else "after integration"
        return (
            f"function {where}, for gene pairs whose smallest shared set has {inside} genes, "
            "against pairs sharing no set (AUROC; 0.5 = chance). A broad set (hundreds of "
            "genes) says little about which genes work together; a small one names a process."
        )
    if base == "edge_auc" and bracket:
        return f"structure in {inside}: its co-expression edges are closer than non-edges (AUROC)."
    return METRIC_READING.get(base, "")


def _value(table: pd.DataFrame, row: str, column: str) -> float:
    try:
        value = float(table.loc[row, column])
    except (KeyError, TypeError, ValueError):
        return math.nan
    return value


def benchmark_reading(table: pd.DataFrame, method: str = "musegnn") -> list[str]:
    """Sentences that read ``table`` (metrics x methods) for a person, most important first."""
    notes = []
    random_wins = [
        m
        for m in MIXING
        if _value(table, m, "random") > _value(table, m, method)
        and not math.isnan(_value(table, m, method))
    ]
    if "random" in table.columns:
        text = (
            "A random embedding places every gene at a random point, so every neighbourhood "
            "and every cluster mixes all datasets: the mixing scores (ASW, iLISI) reward "
            "exactly that, whether or not related genes are together, so random scores near "
            "their maximum. "
        )
        if random_wins:
            names = " and ".join(m.upper() if m == "asw" else "iLISI" for m in random_wins)
            text += f"Here random beats MuSe-GNN on {names}; this is expected and not a flaw. "
        text += (
            "Read mixing next to the scores that need real structure (edge AUC, common gene "
            "ratio, neighbours overlap and the gene-set measures), on which random stays at "
            "chance (0.5) or near 0."
        )
        notes.append(text)
    better = [
        m
        for m in (*STRUCTURE, *(k for k in table.index if ":" in str(k)))
        if m in table.index
        and all(
            _value(table, m, method) > _value(table, m, other)
            for other in table.columns
            if other != method
        )
    ]
    if better and method in table.columns and len(table.columns) > 1:
        notes.append(
            f"MuSe-GNN is ahead of every baseline on {len(better)} of the structure and "
            "function scores: the embedding keeps co-expression and gene function, not just "
            "mixing."
        )
    return notes

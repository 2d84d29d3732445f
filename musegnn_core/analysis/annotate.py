"""Gene programs a biologist can name: each cluster's enriched terms, hub genes and breadth.

For every Leiden cluster of a run at one resolution:

- ``top_terms``: the most enriched gene sets of each chosen library (over-representation
  against the genes of the run's graphs, Benjamini-Hochberg within a library, exactly the
  test of :mod:`.enrich`, vectorised over all clusters at once);
- ``hub_genes``: the genes most central to the cluster in the embedding (mean cosine of
  their rows to the cluster's other rows), with their co-expression degree inside the
  cluster in the run's graphs;
- breadth: datasets, tissues, modalities and species of the cluster's rows;
- ``label``: a short name built from them, e.g. "MYC targets V1 / E2F targets · 38 genes";
  a cluster with no significant term is named by its hub genes and says so.

Annotations are cached per run, resolution and library set as JSON under
``runs/<run>/annotations/`` (atomic writes). The cache key is made of file stamps only
(the embeddings file and each library file), so a cached read loads neither the
embedding nor the graphs.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import hypergeom

from ..errors import ValidationError
from ..storage import atomic_write_json, read_json
from .arrays import unit_rows
from .clusters import COMPOSITION_KEYS, _cluster_order, _obs, run_clustering
from .genesets import read_gmt
from .libraries import library_name

#: A term names a cluster when its adjusted p-value is below this and it shares 2+ genes.
SIGNIFICANCE = 0.05
MIN_OVERLAP = 2
TOP_TERMS_PER_LIBRARY = 3
N_HUB_GENES = 5
#: Bumped when the annotation's content changes, so older caches are recomputed.
FORMAT = 1


# ----------------------------------------------------------------------------- terms
_GO_ID = re.compile(r"\s*\(GO:\d+\)\s*$")
_MSIGDB_PREFIX = re.compile(r"^(HALLMARK|KEGG|REACTOME|BIOCARTA|GOBP|GOCC|GOMF|WP|PID)_")
#: Short words of MSigDB names that read better in lower case (others of 4 letters or
#: fewer, and any with a digit, are kept as written: MYC, E2F, KRAS, IL2, G2M, UV, DNA).
_LOWER_WORDS = {"VIA", "AND", "OF", "UP", "DN", "BY", "IN", "THE", "TO", "BETA", "BILE", "ACID"}
_LOWER_WORDS |= {"HEME", "CELL", "CELLS", "LATE", "EARLY", "ALPHA", "GAMMA"}


def short_term(term: str) -> str:
    """A term's name as a person would say it.

    MSigDB names lose their collection prefix and underscores ("HALLMARK_MYC_TARGETS_V1"
    -> "MYC targets V1"); GO names lose their identifier ("... (GO:0006955)"). Other names
    are kept as written.
    """
    text = _GO_ID.sub("", str(term)).strip()
    if text.isupper() and "_" in text and " " not in text:
        words = _MSIGDB_PREFIX.sub("", text).split("_")
        text = " ".join(
            w.lower()
            if w in _LOWER_WORDS or (len(w) > 4 and not any(ch.isdigit() for ch in w))
            else w
            for w in words
            if w
        )
    return text or str(term)


def short_library(name: str) -> str:
    """A library's name for a figure: "Hallmark", "GO BP", ... (else the name itself)."""
    lower = str(name).lower()
    for key, short in (
        ("hallmark", "Hallmark"),
        ("go_biological_process", "GO BP"),
        ("go_molecular_function", "GO MF"),
        ("go_cellular_component", "GO CC"),
        ("kegg", "KEGG"),
        ("reactome", "Reactome"),
    ):
        if key in lower:
            return f"{short} (mouse)" if lower.startswith("mouse") else short
    return str(name)


# ----------------------------------------------------------------------------- enrichment
def enrich_selections(
    selections: Mapping[str, Sequence[str]],
    gene_sets: Mapping[str, Sequence[str]],
    background: Sequence[str],
    library: str = "",
) -> dict[str, pd.DataFrame]:
    """Over-representation of each selection (e.g. each cluster) in one library, at once.

    The same test as :func:`.enrich.enrich_genes` (hypergeometric upper tail within the
    background; BH over the sets that share a gene with the selection; the Haldane-
    Anscombe odds ratio), computed with one sparse product for all selections instead of
    one gseapy call each: all clusters of a run against GO BP take well under a second.
    Returns, per selection, the rows of sets sharing at least one gene, sorted by p-value.
    """
    from .enrich import RESULT_COLUMNS

    universe = sorted({str(g) for g in background})
    where = {g: i for i, g in enumerate(universe)}
    names, rows, cols = [], [], []
    for name, members in gene_sets.items():
        hits = sorted({where[g] for g in members if g in where})
        if hits:
            cols += [len(names)] * len(hits)
            rows += hits
            names.append(name)
    out: dict[str, pd.DataFrame] = {}
    empty = pd.DataFrame(columns=RESULT_COLUMNS)
    if not names:
        return {key: empty.copy() for key in selections}
    membership = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(universe), len(names))
    )
    set_sizes = np.asarray(membership.sum(axis=0)).ravel().astype(int)
    by_set = membership.tocsc()
    universe_arr = np.asarray(universe, dtype=object)
    keys = list(selections)
    query = []
    for key in keys:
        query.append(sorted({where[g] for g in selections[key] if g in where}))
    q_rows = [i for i, q in enumerate(query) for _ in q]
    q_cols = [g for q in query for g in q]
    indicator = sp.csr_matrix(
        (np.ones(len(q_cols), dtype=np.float32), (q_rows, q_cols)),
        shape=(len(keys), len(universe)),
    )
    overlaps = np.asarray((indicator @ membership).todense()).round().astype(int)
    total = len(universe)
    for i, key in enumerate(keys):
        k = len(query[i])
        tested = np.flatnonzero(overlaps[i] > 0)
        if k == 0 or tested.size == 0:
            out[key] = empty.copy()
            continue
        x, m = overlaps[i, tested], set_sizes[tested]
        p = hypergeom.sf(x - 1, total, m, k)
        odds = ((x + 0.5) * (total - m - k + x + 0.5)) / ((m - x + 0.5) * (k - x + 0.5))
        chosen = set(query[i])
        genes = []
        for j in tested:
            column = by_set.indices[by_set.indptr[j] : by_set.indptr[j + 1]]
            genes.append(";".join(sorted(universe_arr[[g for g in column if g in chosen]])))
        frame = pd.DataFrame(
            {
                "library": library,
                "term": [names[j] for j in tested],
                "overlap": [f"{a}/{b}" for a, b in zip(x, m, strict=True)],
                "n_overlap": x,
                "set_size": m,
                "p_value": p,
                "adjusted_p_value": benjamini_hochberg(p),
                "odds_ratio": odds,
                "genes": genes,
            }
        )
        out[key] = frame.sort_values(["p_value", "term"], kind="stable").reset_index(drop=True)
    return out


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values (step-up, monotone, capped at 1), in the input order."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    order = np.argsort(p, kind="mergesort")
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(adjusted)
    out[order] = np.minimum(adjusted, 1.0)
    return out


# ----------------------------------------------------------------------------- hub genes
def row_centrality(embedding: ad.AnnData, labels: pd.Series) -> np.ndarray:
    """Per row, the mean cosine similarity to the other rows of its cluster (1 when alone)."""
    X = unit_rows(embedding.X)
    values = np.asarray(labels, dtype=str)
    out = np.ones(len(values))
    for cluster in np.unique(values):
        rows = np.flatnonzero(values == cluster)
        if rows.size < 2:
            continue
        block = X[rows]
        # sum_j x_i.x_j over the other rows = x_i . (sum of rows) - x_i . x_i
        out[rows] = (block @ block.sum(axis=0) - (block * block).sum(axis=1)) / (rows.size - 1)
    return out


def within_cluster_degree(graphs: Mapping[str, object], genes: Sequence[str]) -> pd.Series:
    """For each gene, how many of ``genes`` it is co-expressed with in at least one graph.

    ``graphs`` maps a dataset to anything with ``genes`` and a sparse ``adjacency``.
    """
    genes = list(dict.fromkeys(map(str, genes)))
    where = {g: i for i, g in enumerate(genes)}
    union = sp.csr_matrix((len(genes), len(genes)), dtype=np.float32)
    for graph in graphs.values():
        local = [(i, where[g]) for i, g in enumerate(graph.genes) if g in where]
        if len(local) < 2:
            continue
        rows = np.array([i for i, _ in local])
        mapped = np.array([j for _, j in local])
        block = sp.coo_matrix(sp.csr_matrix(graph.adjacency)[rows][:, rows])
        keep = block.row != block.col  # self-loops are stored, as in the reference
        union = union + sp.csr_matrix(
            (
                np.ones(int(keep.sum()), dtype=np.float32),
                (mapped[block.row[keep]], mapped[block.col[keep]]),
            ),
            shape=union.shape,
        )
    union = (union + union.T).tocsr()
    degree = np.diff(union.indptr) if union.nnz else np.zeros(len(genes), dtype=int)
    return pd.Series(np.asarray(degree, dtype=int), index=genes, name="coexpression_degree")


def cluster_gene_table(
    embedding: ad.AnnData,
    labels: pd.Series,
    cluster: str,
    graphs: Mapping[str, object] | None = None,
    centrality: np.ndarray | None = None,
) -> pd.DataFrame:
    """The genes of one cluster, most central first: :func:`.clusters.gene_occurrences`
    plus ``centrality`` (mean cosine of the gene's rows to the cluster's other rows) and,
    when ``graphs`` are given, ``coexpression_degree`` (cluster genes it is co-expressed
    with in at least one of the run's graphs)."""
    from .clusters import gene_occurrences

    table = gene_occurrences(embedding, labels, cluster)
    if centrality is None:
        centrality = row_centrality(embedding, labels)
    rows = np.asarray(labels, dtype=str) == str(cluster)
    per_gene = (
        pd.Series(centrality[rows], index=embedding.obs["gene"].astype(str).to_numpy()[rows])
        .groupby(level=0)
        .mean()
    )
    table.insert(1, "centrality", per_gene.reindex(table["gene"]).to_numpy())
    if graphs is not None:
        degree = within_cluster_degree(graphs, table["gene"])
        table.insert(2, "coexpression_degree", degree.reindex(table["gene"]).to_numpy())
    # The same order as the hub genes of annotate_clusters (ties: more datasets, then name).
    table = table.sort_values(
        ["centrality", "n_datasets", "gene"], ascending=[False, False, True], kind="stable"
    ).reset_index(drop=True)
    table["centrality"] = table["centrality"].round(4)
    return table


# ----------------------------------------------------------------------------- labels
def _term_record(row) -> dict:
    return {
        "library": str(row.library),
        "term": str(row.term),
        "name": short_term(row.term),
        "overlap": str(row.overlap),
        "n_overlap": int(row.n_overlap),
        "set_size": int(row.set_size),
        "p_value": float(row.p_value),
        "adjusted_p_value": float(row.adjusted_p_value),
        "odds_ratio": float(row.odds_ratio),
        "genes": str(row.genes),
    }


def significant_terms(result: pd.DataFrame) -> pd.DataFrame:
    """Terms that may name a cluster: adjusted p below :data:`SIGNIFICANCE`, 2+ genes shared."""
    if result.empty:
        return result
    keep = (result["adjusted_p_value"] < SIGNIFICANCE) & (result["n_overlap"] >= MIN_OVERLAP)
    return result[keep]


def label_terms(terms: Sequence[dict]) -> list[dict]:
    """The one or two terms a label names: the most significant, then the best one whose
    genes in the cluster differ from the first's (so "MYC targets V1 / MYC targets V2"
    is not a label)."""
    ranked = sorted(terms, key=lambda t: (t["adjusted_p_value"], t["p_value"], t["term"]))
    if not ranked:
        return []
    chosen = [ranked[0]]
    first = set(ranked[0]["genes"].split(";"))
    for term in ranked[1:]:
        genes = set(term["genes"].split(";"))
        if len(genes & first) / max(len(genes | first), 1) < 0.5:
            chosen.append(term)
            break
    return chosen


def make_label(terms: Sequence[dict], hubs: Sequence[dict], n_genes: int) -> tuple[str, str]:
    """The cluster's short name and what it is built from ("terms" or "hub genes")."""
    size = f"{n_genes} gene{'s' if n_genes != 1 else ''}"
    named = label_terms(terms)
    if named:
        return " / ".join(t["name"] for t in named) + f" · {size}", "terms"
    hub_names = ", ".join(h["gene"] for h in hubs[:3])
    return f"hub genes {hub_names} · {size}", "hub genes"


def annotate_clusters(
    embedding: ad.AnnData,
    labels: pd.Series,
    graphs: Mapping[str, object],
    libraries: Mapping[str, Mapping[str, Sequence[str]]],
    background: Sequence[str] | None = None,
    *,
    top_terms: int = TOP_TERMS_PER_LIBRARY,
    n_hubs: int = N_HUB_GENES,
) -> list[dict]:
    """One record per cluster (in cluster order): label, top terms, hub genes, breadth.

    ``libraries`` maps a library name to its gene sets; ``background`` (default: every
    gene of ``graphs``) is the enrichment universe.
    """
    obs = _obs(embedding, labels)
    if background is None:
        background = sorted({g for graph in graphs.values() for g in graph.genes})
    order = _cluster_order(obs["cluster"])
    genes_of = {c: sorted(set(obs.loc[obs["cluster"] == c, "gene"])) for c in order}
    results = {
        name: enrich_selections(genes_of, sets, background, name)
        for name, sets in libraries.items()
    }
    centrality = row_centrality(embedding, labels)
    records = []
    for cluster in order:
        part = obs["cluster"] == cluster
        per_gene = (
            pd.DataFrame(
                {
                    "gene": obs.loc[part, "gene"].to_numpy(),
                    "centrality": centrality[part.to_numpy()],
                    "dataset": obs.loc[part, "dataset"].to_numpy(),
                }
            )
            .groupby("gene")
            .agg(centrality=("centrality", "mean"), n_datasets=("dataset", "nunique"))
        )
        per_gene = per_gene.sort_values(
            ["centrality", "n_datasets"], ascending=[False, False], kind="stable"
        )
        hubs = per_gene.head(n_hubs)
        degree = within_cluster_degree(graphs, genes_of[cluster])
        hub_records = [
            {
                "gene": str(gene),
                "centrality": round(float(row.centrality), 4),
                "n_datasets": int(row.n_datasets),
                "coexpression_degree": int(degree.get(gene, 0)),
            }
            for gene, row in hubs.iterrows()
        ]
        terms = []
        for name in libraries:
            found = significant_terms(results[name][cluster]).head(top_terms)
            terms += [_term_record(row) for row in found.itertuples()]
        terms.sort(key=lambda t: (t["adjusted_p_value"], t["p_value"]))
        label, labelled_by = make_label(terms, hub_records, len(genes_of[cluster]))
        breadth = {
            key: {str(k): int(v) for k, v in obs.loc[part, key].value_counts().items()}
            for key in COMPOSITION_KEYS
        }
        records.append(
            {
                "cluster": cluster,
                "label": label,
                "labelled_by": labelled_by,
                "n_genes": len(genes_of[cluster]),
                "n_rows": int(part.sum()),
                "breadth": breadth,
                "hub_genes": hub_records,
                "top_terms": terms,
            }
        )
    return records


# ----------------------------------------------------------------------------- per run
@dataclass
class Annotations:
    """A run's annotated clusters at one resolution and library set."""

    clusters: list[dict]
    resolution: float
    libraries: list[str]
    cached: bool
    seconds: float
    path: Path | None = None
    note: str = ""

    def labels(self) -> dict[str, str]:
        """Cluster -> label."""
        return {c["cluster"]: c["label"] for c in self.clusters}

    def titles(self) -> dict[str, str]:
        """Cluster -> "13 · MYC targets V1 · 38 genes": the number stays, for reference."""
        return {c["cluster"]: cluster_title(c["cluster"], c["label"]) for c in self.clusters}

    def cluster(self, cluster: str) -> dict:
        for record in self.clusters:
            if record["cluster"] == str(cluster):
                return record
        raise ValidationError(f"No cluster {cluster!r} at resolution {self.resolution:g}.")

    def table(self) -> pd.DataFrame:
        """One row per cluster: label, what names it, hub genes and top terms as text."""
        return pd.DataFrame(
            [
                {
                    "cluster": c["cluster"],
                    "label": c["label"],
                    "labelled_by": c["labelled_by"],
                    "hub_genes": ", ".join(h["gene"] for h in c["hub_genes"]),
                    "top_terms": "; ".join(
                        f"{t['name']} ({t['library']}, adj. p {t['adjusted_p_value']:.1e})"
                        for t in c["top_terms"]
                    ),
                }
                for c in self.clusters
            ],
            columns=["cluster", "label", "labelled_by", "hub_genes", "top_terms"],
        )

    def to_dict(self) -> dict:
        return {
            "resolution": self.resolution,
            "libraries": self.libraries,
            "significance": SIGNIFICANCE,
            "clusters": self.clusters,
        }


def cluster_title(cluster: str, label: str | None) -> str:
    return f"{cluster} · {label}" if label else f"cluster {cluster}"


def default_annotation_libraries(workspace, run) -> list[Path]:
    """The libraries a run is annotated with unless told otherwise: the simulated atlas's
    planted modules for a run on simulated data, else the shared Hallmark and GO BP
    libraries (else the planted modules, else none)."""
    from .evaluate import default_gene_set_paths

    planted = workspace.root / "resources" / "planted_modules.gmt"
    names = set(run.config().get("datasets", []))
    metas = [m for m in workspace.datasets() if m.name in names]
    if planted.exists() and metas and all(m.simulated for m in metas):
        return [planted]
    shared = default_gene_set_paths()
    if shared:
        return shared
    return [planted] if planted.exists() else []


def _stamp(path: Path) -> list:
    stat = Path(path).stat()
    return [stat.st_size, stat.st_mtime_ns]


def _cache_key(run, resolution: float, seed: int, paths: Sequence[Path]) -> str:
    if not run.embeddings_path.exists():
        from .evaluate import load_embedding

        load_embedding(run)  # raises the "no embeddings yet" message
    config = run.config()
    parts = {
        "format": FORMAT,
        "resolution": resolution,
        "seed": seed,
        "embeddings": _stamp(run.embeddings_path),
        "graphs": config.get("graph_fingerprints", []),
        # By content: a moved or copied workspace keeps its cache, an edited file does not.
        "libraries": [
            [library_name(p), hashlib.sha1(Path(p).read_bytes()).hexdigest()] for p in paths
        ],
        "significance": SIGNIFICANCE,
    }
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def annotations_dir(run) -> Path:
    return run.root / "annotations"


def run_graph_adjacency(workspace, run) -> dict[str, object]:
    """The genes and adjacency of each graph the run was trained on (not the features)."""
    from types import SimpleNamespace

    from ..graphs.build import graph_folder

    config = run.config()
    out = {}
    for dataset, fingerprint in zip(
        config.get("datasets", []), config.get("graph_fingerprints", []), strict=True
    ):
        folder = graph_folder(workspace, dataset, fingerprint)
        if not (folder / "graph.json").exists():
            raise ValidationError(
                f"The graph of {dataset!r} that run {run.name} was trained on is gone "
                "(dataset deleted or re-imported); its clusters cannot be annotated."
            )
        genes = pd.read_csv(folder / "genes.tsv", sep="\t", dtype=str, keep_default_na=False)
        out[dataset] = SimpleNamespace(
            genes=genes["node"].tolist(), adjacency=sp.load_npz(folder / "adjacency.npz").tocsr()
        )
    return out


def run_annotations(
    workspace,
    run,
    resolution: float | None = None,
    library_paths: Sequence[str | Path] | None = None,
    *,
    recompute: bool = False,
) -> Annotations:
    """The annotated clusters of ``run`` (a Run or a run name) at ``resolution`` (default:
    the run's own) against ``library_paths`` (default: :func:`default_annotation_libraries`).

    Read from ``runs/<run>/annotations/`` when an annotation with the same embeddings,
    resolution and library files is there; otherwise computed and written atomically.
    """
    from ..runs import get_run
    from .clusters import check_resolution
    from .evaluate import load_embedding

    if isinstance(run, str):
        run = get_run(workspace, run)
    start = time.perf_counter()
    train = run.config().get("train", {})
    seed = int(train.get("seed", 0))
    trained = float(train.get("leiden_resolution", 1.0))
    resolution = check_resolution(trained if resolution is None else resolution)
    paths = (
        default_annotation_libraries(workspace, run)
        if library_paths is None
        else [Path(p) for p in library_paths]
    )
    paths = list(dict.fromkeys(Path(p) for p in paths))
    for path in paths:
        if not path.is_file():
            raise ValidationError(f"Gene-set library not found: {path}")
    key = _cache_key(run, resolution, seed, paths)
    cache = annotations_dir(run) / f"res{resolution:g}-seed{seed}-{key}.json"
    names = [library_name(p) for p in paths]
    note = "" if paths else "no gene-set library available: clusters are named by hub genes"
    if not recompute:
        stored = read_json(cache, None) if cache.exists() else None
        if isinstance(stored, dict) and stored.get("key") == key:
            return Annotations(
                stored["clusters"],
                resolution,
                names,
                True,
                time.perf_counter() - start,
                cache,
                stored.get("note", ""),
            )
    embedding = load_embedding(run)
    labels = run_clustering(run, embedding, resolution, seed=seed).labels
    graphs = run_graph_adjacency(workspace, run)
    libraries = {library_name(p): read_gmt(p) for p in paths}
    records = annotate_clusters(embedding, labels, graphs, libraries)
    seconds = time.perf_counter() - start
    from ..workspace import now_iso

    atomic_write_json(
        cache,
        {
            "key": key,
            "created_at": now_iso(),
            "seconds": round(seconds, 3),
            "resolution": resolution,
            "seed": seed,
            "libraries": [str(p) for p in paths],
            "significance": SIGNIFICANCE,
            "note": note,
            "clusters": records,
        },
    )
    return Annotations(records, resolution, names, False, seconds, cache, note)


def annotate_after_training(workspace, run) -> Annotations | None:
    """Annotate a run that has just finished, at its own resolution with the default
    libraries. Never raises: a failure here must not fail the training, and the pages
    and ``clusters`` compute the annotation again on demand."""
    try:
        return run_annotations(workspace, run)
    except Exception as exc:  # any failure: the embeddings are written, the run is done
        import sys

        print(
            f"{run.name}: clusters not annotated ({type(exc).__name__}: {exc}); "
            "they are annotated when first viewed.",
            file=sys.stderr,
        )
        return None


def annotation_uns(annotations: Annotations) -> dict:
    """The annotation as an h5ad ``uns`` entry (strings and flat lists only)."""
    return {
        "resolution": float(annotations.resolution),
        "libraries": list(annotations.libraries),
        "cluster": [c["cluster"] for c in annotations.clusters],
        "label": [c["label"] for c in annotations.clusters],
        "labelled_by": [c["labelled_by"] for c in annotations.clusters],
        "hub_genes": [", ".join(h["gene"] for h in c["hub_genes"]) for c in annotations.clusters],
        "top_terms": [
            "; ".join(f"{t['term']} ({t['library']})" for t in c["top_terms"])
            for c in annotations.clusters
        ],
        "json": json.dumps(annotations.to_dict()),
    }


def labelled_summary(summary: pd.DataFrame, annotations: Annotations) -> pd.DataFrame:
    """:func:`.clusters.cluster_summary` with each cluster's label and hub genes after its number."""
    names = annotations.table().set_index("cluster")
    table = summary.copy()
    clusters = table["cluster"].astype(str)
    table.insert(1, "label", clusters.map(names["label"]).fillna("").to_numpy())
    table.insert(2, "hub_genes", clusters.map(names["hub_genes"]).fillna("").to_numpy())
    return table


def cluster_records(summary: pd.DataFrame, annotations: Annotations) -> list[dict]:
    """One JSON-ready record per cluster: the summary's columns, ``label``, ``labelled_by``,
    ``hub_genes`` and ``top_terms`` (lists of records) and ``breadth``."""
    by_cluster = {c["cluster"]: c for c in annotations.clusters}
    records = []
    for row in json.loads(summary.to_json(orient="records")):
        found = by_cluster.get(str(row["cluster"]), {})
        records.append(
            {
                **row,
                "label": found.get("label", ""),
                "labelled_by": found.get("labelled_by", ""),
                "hub_genes": found.get("hub_genes", []),
                "top_terms": found.get("top_terms", []),
                "breadth": found.get("breadth", {}),
            }
        )
    return records

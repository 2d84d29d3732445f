"""Co-expression subgraphs: how a gene or a cluster is wired in each dataset's graph.

Edges come from the stored CS-CORE graphs (the graphs the run was trained on). A hub
gene can have hundreds of neighbours per dataset, so the view is bounded: for each seed
gene, only its ``max_neighbours`` strongest neighbours per dataset are candidates, and
the whole view holds at most ``max_nodes`` genes and ``max_edges`` merged edges.

Edge strength is the Pearson correlation of the two genes' Pearson-residual features
in that dataset (the graphs store only 0/1 edges): large |r| first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import ValidationError
from .arrays import standard_rows

LIMITS = {"max_neighbours": (0, 100), "max_nodes": (2, 500), "max_edges": (1, 20000)}


@dataclass
class CoexpressionSubgraph:
    """A bounded co-expression view, ready to draw.

    ``nodes``: gene, seed (asked for), datasets (where the gene is in the view's graphs),
    n_datasets, degree (in the merged view), x, y (networkx spring layout, seeded).
    ``edges``: one row per (source, target, dataset) with the residual correlation.
    ``merged``: one row per gene pair: datasets supporting it, n_datasets, mean_correlation.
    ``notes``: what was left out to respect the bounds.
    """

    nodes: pd.DataFrame
    edges: pd.DataFrame
    merged: pd.DataFrame
    datasets: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return bool(self.notes)


def _check_limits(**values: int) -> None:
    for name, value in values.items():
        low, high = LIMITS[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | np.integer)
            or not (low <= value <= high)
        ):
            raise ValidationError(
                f"{name} must be a whole number from {low} to {high}, not {value!r}."
            )


def _correlations(features: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Pearson correlation of feature rows ``rows[i]`` and ``cols[i]`` (pairwise, not a matrix)."""
    if rows.size == 0:
        return np.zeros(0)
    used = np.unique(np.concatenate([rows, cols]))
    block = standard_rows(features[used])
    where = {g: i for i, g in enumerate(used)}
    a = block[[where[r] for r in rows]]
    b = block[[where[c] for c in cols]]
    return np.einsum("ij,ij->i", a, b)


def _strongest_neighbours(graph, seed_idx: np.ndarray, k: int) -> dict[int, np.ndarray]:
    """For each seed row, its ``k`` neighbours with the largest |residual correlation|."""
    adjacency = sp.csr_matrix(graph.adjacency)
    out = {}
    for i in seed_idx:
        neighbours = adjacency.indices[adjacency.indptr[i] : adjacency.indptr[i + 1]]
        neighbours = neighbours[neighbours != i]
        if neighbours.size > k:
            strength = np.abs(
                _correlations(graph.features, np.full(neighbours.size, i), neighbours)
            )
            neighbours = neighbours[np.argsort(-strength, kind="stable")[:k]]
        out[int(i)] = neighbours
    return out


def _layout(network, genes: Sequence[str], seed: int) -> dict:
    """Node positions: Kamada-Kawai (graph distances kept as lengths) for a connected view,
    so a dense module spreads into a readable ring instead of a ball where every name
    overlaps; each connected part laid out on its own, seeded spring layout for the rest."""
    import networkx as nx

    if network.number_of_nodes() <= 1:
        return {g: np.zeros(2) for g in genes}
    start = nx.spring_layout(
        network, seed=seed, weight="weight", k=1.5 / math.sqrt(max(len(genes), 1))
    )
    if network.number_of_nodes() > 300 or network.number_of_edges() == 0:
        return start
    # Unweighted distances: a pair seen in more datasets should not be pulled closer than
    # its graph distance says (the colours and widths already show the support).
    return nx.kamada_kawai_layout(network, pos=start, weight=None)


def merge_edges(edges: pd.DataFrame) -> pd.DataFrame:
    """One row per gene pair: the datasets whose graph has the edge, their count and the
    mean residual correlation over them (``edges`` has one orientation per pair)."""
    if edges.empty:
        return pd.DataFrame(
            columns=["source", "target", "datasets", "n_datasets", "mean_correlation"]
        )
    return (
        edges.groupby(["source", "target"], sort=False)
        .agg(
            datasets=("dataset", lambda d: ", ".join(sorted(d))),
            n_datasets=("dataset", "nunique"),
            mean_correlation=("correlation", "mean"),
        )
        .reset_index()
    )


def coexpression_subgraph(
    graphs: Mapping[str, object],
    genes: Sequence[str],
    *,
    datasets: Sequence[str] | None = None,
    max_neighbours: int = 10,
    max_nodes: int = 60,
    max_edges: int = 600,
    layout_seed: int = 0,
) -> CoexpressionSubgraph:
    """The co-expression view around ``genes`` in the given graphs (name -> GeneGraph).

    Seeds are the asked genes present in at least one of the graphs; if there are more
    than ``max_nodes``, those in most datasets are kept. Each seed adds its
    ``max_neighbours`` strongest neighbours per dataset; neighbour genes are then ranked
    by how many (seed, dataset) lists name them and kept up to ``max_nodes``. Edges are
    all graph edges among the kept genes, per dataset; the merged view keeps at most
    ``max_edges`` pairs, best supported first.
    """
    import networkx as nx

    _check_limits(max_neighbours=max_neighbours, max_nodes=max_nodes, max_edges=max_edges)
    if datasets:
        unknown = sorted(set(datasets) - set(graphs))
        if unknown:
            raise ValidationError(f"Dataset {unknown[0]!r} is not one of this run's graphs.")
        graphs = {d: graphs[d] for d in datasets}
    if not graphs:
        raise ValidationError("No graphs to draw from.")
    asked = list(dict.fromkeys(str(g) for g in genes))
    if not asked:
        raise ValidationError("Give a gene or a cluster to draw.")
    index = {name: {g: i for i, g in enumerate(graph.genes)} for name, graph in graphs.items()}
    presence = {g: [d for d in graphs if g in index[d]] for g in asked}
    seeds = [g for g in asked if presence[g]]
    if not seeds:
        shown = ", ".join(asked[:5]) + (" ..." if len(asked) > 5 else "")
        raise ValidationError(
            f"None of {shown} is in the chosen datasets' graphs (names are human symbols; "
            "mouse genes appear under their human ortholog)."
        )
    notes = []
    missing = len(asked) - len(seeds)
    if missing:
        notes.append(f"{missing} of the {len(asked)} genes are in none of these graphs.")
    if len(seeds) > max_nodes:
        order = sorted(range(len(seeds)), key=lambda i: (-len(presence[seeds[i]]), i))
        notes.append(
            f"Showing {max_nodes} of the {len(seeds)} genes (those in most datasets); "
            "raise the size bound to see more."
        )
        seeds = [seeds[i] for i in sorted(order[:max_nodes])]
    seed_set = set(seeds)

    votes: dict[str, int] = {}
    if max_neighbours > 0 and len(seeds) < max_nodes:
        for name, graph in graphs.items():
            seed_idx = np.array([index[name][g] for g in seeds if g in index[name]], dtype=int)
            for neighbours in _strongest_neighbours(graph, seed_idx, max_neighbours).values():
                for j in neighbours:
                    gene = graph.genes[j]
                    if gene not in seed_set:
                        votes[gene] = votes.get(gene, 0) + 1
    room = max_nodes - len(seeds)
    ranked = sorted(votes, key=lambda g: (-votes[g], g))
    if len(ranked) > room:
        notes.append(
            f"Kept the {room} best-supported of {len(ranked)} neighbour genes "
            f"(size bound {max_nodes})."
        )
    kept = seeds + ranked[:room]

    edge_frames = []
    for name, graph in graphs.items():
        rows = np.array([index[name][g] for g in kept if g in index[name]], dtype=int)
        if rows.size < 2:
            continue
        block = sp.csr_matrix(graph.adjacency)[rows][:, rows]
        upper = sp.triu(block, k=1).tocoo()
        if upper.nnz == 0:
            continue
        src, dst = rows[upper.row], rows[upper.col]
        genes_arr = np.asarray(graph.genes, dtype=object)
        edge_frames.append(
            pd.DataFrame(
                {
                    "source": genes_arr[src],
                    "target": genes_arr[dst],
                    "dataset": name,
                    "correlation": _correlations(graph.features, src, dst).round(4),
                }
            )
        )
    edges = (
        pd.concat(edge_frames, ignore_index=True)
        if edge_frames
        else pd.DataFrame(columns=["source", "target", "dataset", "correlation"])
    )
    # One orientation per pair so that datasets listing (a, b) and (b, a) agree.
    if not edges.empty:
        swap = edges["source"] > edges["target"]
        edges.loc[swap, ["source", "target"]] = edges.loc[swap, ["target", "source"]].to_numpy()
    merged = merge_edges(edges)
    if len(merged) > max_edges:
        notes.append(
            f"Showing the {max_edges} best-supported of {len(merged)} gene pairs "
            f"(edge bound {max_edges})."
        )
        merged = merged.assign(_strength=merged["mean_correlation"].abs()).sort_values(
            ["n_datasets", "_strength"], ascending=False, kind="stable"
        )
        merged = merged.head(max_edges).drop(columns="_strength")
        keep_pairs = set(zip(merged["source"], merged["target"], strict=True))
        edges = edges[[p in keep_pairs for p in zip(edges["source"], edges["target"], strict=True)]]
    merged = merged.reset_index(drop=True)
    edges = edges.reset_index(drop=True)

    network = nx.Graph()
    network.add_nodes_from(kept)
    for a, b, n in zip(merged["source"], merged["target"], merged["n_datasets"], strict=True):
        network.add_edge(a, b, weight=float(n))
    layout = _layout(network, kept, layout_seed)
    degree = dict(network.degree())
    in_view = {g: [d for d in graphs if g in index[d]] for g in kept}
    nodes = pd.DataFrame(
        {
            "gene": kept,
            "seed": [g in seed_set for g in kept],
            "datasets": [", ".join(in_view[g]) for g in kept],
            "n_datasets": [len(in_view[g]) for g in kept],
            "degree": [degree[g] for g in kept],
            "x": [float(layout[g][0]) for g in kept],
            "y": [float(layout[g][1]) for g in kept],
        }
    )
    return CoexpressionSubgraph(nodes, edges, merged, list(graphs), notes)


def keep_correlated(sub: CoexpressionSubgraph, min_abs_correlation: float) -> CoexpressionSubgraph:
    """The view with only the edges whose |residual correlation| is at least the threshold.

    Per-dataset edges are filtered by their own r; a merged pair keeps the datasets whose
    edge passed, and its mean correlation is recomputed over them. Node positions stay,
    so moving the threshold does not reshuffle the picture; degrees are recounted.
    """
    threshold = float(min_abs_correlation)
    if not (math.isfinite(threshold) and 0.0 <= threshold < 1.0):
        raise ValidationError(f"The minimum |r| must be from 0 to below 1, not {threshold}.")
    if threshold == 0.0 or sub.edges.empty:
        return sub
    edges = sub.edges[sub.edges["correlation"].abs() >= threshold].reset_index(drop=True)
    kept_pairs = set(zip(sub.merged["source"], sub.merged["target"], strict=True))
    edges = edges[
        [p in kept_pairs for p in zip(edges["source"], edges["target"], strict=True)]
    ].reset_index(drop=True)
    merged = merge_edges(edges)
    degree = pd.concat([merged["source"], merged["target"]]).value_counts()
    nodes = sub.nodes.assign(degree=sub.nodes["gene"].map(degree).fillna(0).astype(int).to_numpy())
    notes = [
        *sub.notes,
        f"Edges with |r| below {threshold:g} are hidden "
        f"({len(sub.merged) - len(merged)} of {len(sub.merged)} gene pairs).",
    ]
    return CoexpressionSubgraph(nodes, edges, merged.reset_index(drop=True), sub.datasets, notes)

"""What a gene embedding knows about gene function, measured against no-learning baselines.

The unit of every measure is a *gene pair*, not an embedding row, so that a method is
judged on the question a biologist asks ("are these two genes related?") and every method
is scored on the same pairs:

* ``within``: the similarity of two genes is the mean, over the datasets that hold both,
  of the cosine of their two rows in that dataset. This is what one dataset's embedding
  (or co-expression) knows, averaged where there is more than one.
* ``per_dataset``: each dataset's own AUROC over the pairs it holds, averaged over the
  datasets. ``within`` averages a pair's cosines over the datasets holding both, which
  rewards a method whose datasets err independently (the average of independent noisy
  estimates is better than any one of them), so it cannot tell whether each dataset's
  vectors are better; ``per_dataset`` can.
* ``unified``: the cosine of each gene's *mean* embedding over its datasets: one vector
  per gene, the integrated view of it (the UMAP, the clusters and the neighbour lists work
  on the rows, where a gene's instances sit together). It scores pairs whether or not any
  dataset holds both genes, so it shows what integration passes on.

A pair is positive when the two genes share a set of the library and negative when they
share none; unannotated genes are left out (unknown, not negative). The AUROC of the
similarity is 0.5 for chance.

The no-learning baseline :func:`coexpression_blocks` is the Pearson correlation of the
genes' residual features (the model's input) in each dataset: a learned embedding earns
its place only by beating it. Correlations live in a different cell space per dataset,
so co-expression has no mean vector: its ``unified`` score is its ``within`` score, 0 (no
evidence) for pairs that no dataset holds together. The second no-learning baseline,
:func:`profile_blocks`, compares co-expression *profiles* (second-order co-expression: two
genes are alike when they correlate with the same genes). Profiles are indexed by genes,
not cells, so they compare across datasets over the genes both hold: the one no-learning
method with a ``unified`` score of its own, and the bar for what integration passes on.

Also here: :func:`edge_auc_by_dataset` (does the geometry carry the graph?) and
:func:`same_gene_alignment` (do a gene's instances in different datasets meet?), judged by
rank as well as by cosine, because an embedding squeezed into a narrow cone has high
cosines everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import ValidationError
from . import arrays
from .functional import set_membership
from .metrics import binary_auc

#: Pairs drawn per class (sharing a set / sharing none) for each measure.
PAIRS_PER_CLASS = 20_000
#: Pairs drawn per class in each dataset for ``per_dataset``.
PAIRS_PER_CLASS_PER_DATASET = 5_000
#: Bins of "datasets holding both genes" for the breakdown of ``within``.
SHARED_BINS = ((1, 1, "1"), (2, 2, "2"), (3, 4, "3-4"), (5, 10**9, "5+"))
#: The same for ``unified``, which also scores pairs that no dataset holds together: what
#: integration passes on to genes that were never measured side by side.
UNIFIED_BINS = ((0, 0, "0"), *SHARED_BINS)
#: Bins of "genes in the smallest set the pair shares" for the breakdown of ``within`` and
#: ``unified`` (every bin against all the pairs sharing no set). A library's broad sets
#: ("regulation of transcription", 2,000 genes) say little about which genes work
#: together; a small one names a process.
SET_SIZE_BINS = ((1, 100, "1-100"), (101, 500, "101-500"), (501, 10**9, "501+"))


def unit_rows(matrix) -> np.ndarray:
    """Rows of length 1 in float32 (the pair sums below are over millions of entries)."""
    return arrays.unit_rows(matrix, dtype=np.float32)


@dataclass
class GeneBlocks:
    """Per dataset, gene names and unit vectors whose dot product is the similarity.

    ``shared_space`` says whether the vectors of different datasets live in one space
    (an embedding) or not (residual features: one cell space per dataset).
    """

    genes: dict[str, np.ndarray]
    vectors: dict[str, np.ndarray]
    shared_space: bool
    #: Profile blocks only: the gene of each coordinate of a dataset's vectors, so that two
    #: datasets' vectors compare over the genes both hold (:func:`profile_blocks`).
    columns: dict[str, np.ndarray] | None = None

    @property
    def datasets(self) -> list[str]:
        return list(self.genes)


def embedding_blocks(adata: ad.AnnData) -> GeneBlocks:
    """Blocks of a joint embedding (rows of ``adata`` with obs ``gene`` and ``dataset``)."""
    genes = arrays.obs_column(adata, "gene")
    datasets = arrays.obs_column(adata, "dataset")
    X = unit_rows(adata.X)
    blocks_genes, blocks_vectors = {}, {}
    for name in pd.unique(datasets):
        rows = np.flatnonzero(datasets == name)
        blocks_genes[name] = genes[rows]
        blocks_vectors[name] = X[rows]
    return GeneBlocks(blocks_genes, blocks_vectors, shared_space=True)


def _standard_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows centred and of length 1 in float32, so that a dot product is a Pearson r."""
    return arrays.standard_rows(matrix, dtype=np.float32)


def coexpression_blocks(graphs: Mapping[str, Any]) -> GeneBlocks:
    """The no-learning baseline: row-centred residual features, so that cosine = Pearson r."""
    genes, vectors = {}, {}
    for name, graph in graphs.items():
        vectors[str(name)] = _standard_rows(np.asarray(graph.features, dtype=np.float32))
        genes[str(name)] = np.asarray(graph.genes, dtype=str)
    return GeneBlocks(genes, vectors, shared_space=False)


def profile_blocks(graphs: Mapping[str, Any]) -> GeneBlocks:
    """The second no-learning baseline: each gene's co-expression profile in a dataset.

    A gene's profile is its Pearson correlation (of residual features) with every gene of
    the dataset, its own entry set to 0; two profiles compare by their Pearson
    correlation. Within a dataset that is second-order co-expression; across datasets,
    :func:`unified_similarity` correlates the profiles over the genes both datasets hold.
    """
    genes, vectors = {}, {}
    for name, graph in graphs.items():
        F = _standard_rows(np.asarray(graph.features, dtype=np.float32))
        profiles = F @ F.T
        np.fill_diagonal(profiles, 0.0)
        vectors[str(name)] = _standard_rows(profiles)
        genes[str(name)] = np.asarray(graph.genes, dtype=str)
    return GeneBlocks(genes, vectors, shared_space=False, columns=dict(genes))


# ------------------------------------------------------------------- gene pairs
@dataclass
class GenePairs:
    """Labelled gene pairs: indices into ``genes``, label, datasets holding both."""

    genes: np.ndarray
    first: np.ndarray
    second: np.ndarray
    label: np.ndarray
    n_shared: np.ndarray


def _presence(blocks: GeneBlocks, genes: np.ndarray) -> np.ndarray:
    """genes x datasets 0/1 matrix (float32, for products)."""
    index = pd.Index(genes)
    presence = np.zeros((genes.size, len(blocks.datasets)), dtype=np.float32)
    for j, name in enumerate(blocks.datasets):
        positions = index.get_indexer(blocks.genes[name])
        presence[positions[positions >= 0], j] = 1.0
    return presence


@dataclass
class PairUniverse:
    """The annotated genes of a library and what the draws need about each pair of them:
    whether they share a set, and how many datasets hold both."""

    genes: np.ndarray
    shares_set: np.ndarray  # genes x genes, bool
    together: np.ndarray  # genes x genes, int32
    presence: np.ndarray  # genes x datasets, 0/1 (``together`` is its Gram matrix)
    membership: sp.csr_matrix  # genes x sets, 0/1
    set_sizes: np.ndarray  # genes in each set of the library (all, not only ours)


def pair_universe(blocks: GeneBlocks, gene_sets: Mapping[str, Sequence[str]]) -> PairUniverse:
    """Genes of the blocks annotated in the library, with their pair tables (computed once
    per library, then drawn from for every scope)."""
    if not gene_sets:
        raise ValidationError("The gene-set library is empty.")
    all_genes = np.unique(np.concatenate([blocks.genes[d] for d in blocks.datasets]))
    membership = set_membership(all_genes, gene_sets)
    annotated = np.asarray(membership.getnnz(axis=1) > 0)
    genes = all_genes[annotated]
    membership = membership[annotated]
    presence = _presence(blocks, genes)
    return PairUniverse(
        genes,
        (membership @ membership.T).toarray() > 0,
        (presence @ presence.T).astype(np.int32),
        presence,
        membership,
        np.array([pd.unique(np.asarray(list(m), dtype=str)).size for m in gene_sets.values()]),
    )


def smallest_shared_set(
    universe: PairUniverse, first: np.ndarray, second: np.ndarray
) -> np.ndarray:
    """For each pair (indices into ``universe.genes``), the size in the library of the
    smallest set both genes belong to; 0 when they share none."""
    both = universe.membership[first].multiply(universe.membership[second]).tocsr()
    both.eliminate_zeros()
    smallest = np.zeros(np.size(first), dtype=np.int64)
    rows = np.flatnonzero(np.diff(both.indptr))
    if rows.size:
        smallest[rows] = np.minimum.reduceat(universe.set_sizes[both.indices], both.indptr[rows])
    return smallest


def sample_gene_pairs(
    blocks: GeneBlocks,
    gene_sets: Mapping[str, Sequence[str]],
    scope: str = "within",
    per_class: int = PAIRS_PER_CLASS,
    seed: int = 0,
    universe: PairUniverse | None = None,
) -> GenePairs:
    """Up to ``per_class`` pairs sharing a set and as many sharing none, drawn uniformly.

    Universe: genes of the blocks annotated in the library (``universe``, when the caller
    has it already). ``scope="within"`` keeps pairs that at least one dataset holds
    together; ``"unified"`` any pair. The draw depends only on the genes, the library and
    ``seed``, so methods on the same graphs are scored on the same pairs.
    """
    if scope not in ("within", "unified"):
        raise ValidationError(f"scope must be 'within' or 'unified', not {scope!r}.")
    universe = universe or pair_universe(blocks, gene_sets)
    genes, shares_set, together = universe.genes, universe.shares_set, universe.together
    n = genes.size
    empty = np.zeros(0, dtype=np.int64)
    if n < 2:
        return GenePairs(genes, empty, empty, empty.astype(bool), empty)

    rng = np.random.default_rng(seed)
    found = {True: [], False: []}
    counts = {True: 0, False: 0}
    for _ in range(200):
        a = rng.integers(0, n, size=200_000)
        b = rng.integers(0, n, size=200_000)
        keep = a != b
        if scope == "within":
            keep &= together[a, b] > 0
        a, b = a[keep], b[keep]
        label = shares_set[a, b]
        for cls in (True, False):
            if counts[cls] < per_class:
                take = np.flatnonzero(label == cls)[: per_class - counts[cls]]
                found[cls].append((a[take], b[take]))
                counts[cls] += take.size
        if counts[True] >= per_class and counts[False] >= per_class:
            break
    first = np.concatenate([x for cls in (True, False) for x, _ in found[cls]] or [empty])
    second = np.concatenate([y for cls in (True, False) for _, y in found[cls]] or [empty])
    label = np.r_[np.ones(counts[True], bool), np.zeros(counts[False], bool)]
    return GenePairs(genes, first, second, label, together[first, second])


def sample_pairs_per_set(
    universe: PairUniverse,
    scope: str = "within",
    count: int = PAIRS_PER_CLASS,
    seed: int = 0,
) -> GenePairs:
    """``count`` pairs sharing a set, each drawn by a set first (uniformly among the sets
    that hold such a pair), then two of its genes (uniformly among its pairs that at least
    one dataset holds together for ``scope="within"``, among all its pairs for
    ``"unified"``).

    :func:`sample_gene_pairs` draws uniformly over all pairs sharing a set, so a library's
    broad terms, which hold most pairs, decide its score (GO BP on the shared atlas: five
    in six such pairs share only sets of more than 100 genes). Here every set weighs the
    same, as when one set at a time is tested: the question "are the genes of a process
    close?" averaged over processes. Deterministic in ``seed``; the same pairs for every
    method on the same genes.
    """
    if scope not in ("within", "unified"):
        raise ValidationError(f"scope must be 'within' or 'unified', not {scope!r}.")
    members = universe.membership.tocsc().astype(np.float32)
    sizes = np.diff(members.indptr)
    if scope == "within":
        # a set holds a pair some dataset holds together iff a dataset holds two of its genes
        eligible = np.flatnonzero(np.asarray(members.T @ universe.presence).max(axis=1) >= 2)
    else:
        eligible = np.flatnonzero(sizes >= 2)
    empty = np.zeros(0, dtype=np.int64)
    if eligible.size == 0:
        return GenePairs(universe.genes, empty, empty, empty.astype(bool), empty)
    rng = np.random.default_rng((seed, 1))
    chosen = eligible[rng.integers(0, eligible.size, size=count)]
    start, k = members.indptr[chosen], sizes[chosen]
    first, second = np.empty(count, np.int64), np.empty(count, np.int64)
    todo = np.arange(count)
    for _ in range(100):  # redraw a pair no dataset holds, keeping its set
        i = rng.integers(0, k[todo])
        j = rng.integers(0, k[todo] - 1)
        j += j >= i
        first[todo] = members.indices[start[todo] + i]
        second[todo] = members.indices[start[todo] + j]
        if scope == "unified":
            todo = todo[:0]
        else:
            todo = todo[universe.together[first[todo], second[todo]] == 0]
        if todo.size == 0:
            break
    for t in todo:  # sets whose held pairs are rare: draw among them directly
        genes = members.indices[start[t] : start[t] + k[t]]
        a, b = np.nonzero(np.triu(universe.together[np.ix_(genes, genes)] > 0, 1))
        pick = rng.integers(0, a.size)
        first[t], second[t] = genes[a[pick]], genes[b[pick]]
    return GenePairs(
        universe.genes, first, second, np.ones(count, bool), universe.together[first, second]
    )


def gene_matched_pairs(
    pairs: GenePairs, universe: PairUniverse, scope: str = "within", seed: int = 0
) -> GenePairs:
    """The pairs sharing a set of ``pairs``, against negatives that re-pair their genes.

    The negatives join the positives' first genes to a permutation of their second genes,
    repaired by swaps until no negative shares a set (or, for ``scope="within"``, misses a
    dataset holding both), so every gene is exactly as frequent among the negatives as
    among the positives. A property of single genes (how expressed, how connected, how well
    annotated: well-studied genes share some set with more genes) then scores chance, 0.5,
    and only what the similarity knows about *which* genes belong together counts. The few
    negatives that no swap repairs are left out.
    """
    a, b = pairs.first[pairs.label], pairs.second[pairs.label]
    m = a.size

    def valid(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        ok = (x != y) & ~universe.shares_set[x, y]
        return ok & (universe.together[x, y] > 0) if scope == "within" else ok

    rng = np.random.default_rng(seed)
    other = b[rng.permutation(m)]
    for _ in range(200):
        bad = np.flatnonzero(~valid(a, other))
        if bad.size == 0 or m < 2:
            break
        partner = rng.integers(0, m, size=bad.size)
        good = valid(a[bad], other[partner]) & valid(a[partner], other[bad])
        used = np.zeros(m, dtype=bool)
        for i, j in zip(bad[good].tolist(), partner[good].tolist(), strict=True):
            if i != j and not used[i] and not used[j]:
                used[i] = used[j] = True
                other[i], other[j] = other[j], other[i]
    keep = valid(a, other)
    first, second = np.r_[a, a[keep]], np.r_[b, other[keep]]
    label = np.r_[np.ones(m, bool), np.zeros(int(keep.sum()), bool)]
    return GenePairs(pairs.genes, first, second, label, universe.together[first, second])


# ------------------------------------------------------------------ similarity
def within_similarity(blocks: GeneBlocks, pairs: GenePairs) -> np.ndarray:
    """Mean over the datasets holding both genes of the pair's cosine (NaN if none)."""
    total = np.zeros(pairs.first.size)
    count = np.zeros(pairs.first.size)
    for name, position in _pair_positions(blocks, pairs).items():
        pa, pb = position[pairs.first], position[pairs.second]
        both = (pa >= 0) & (pb >= 0)
        V = blocks.vectors[name]
        total[both] += np.einsum("ij,ij->i", V[pa[both]], V[pb[both]])
        count[both] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def gene_mean_vectors(blocks: GeneBlocks, genes: np.ndarray) -> np.ndarray:
    """Each gene's mean unit vector over the datasets holding it (rows of ``genes``)."""
    if not blocks.shared_space:
        raise ValidationError("These vectors live in a different space per dataset.")
    dim = next(iter(blocks.vectors.values())).shape[1]
    total = np.zeros((genes.size, dim), dtype=np.float64)
    index = pd.Index(genes)
    for name in blocks.datasets:
        positions = index.get_indexer(blocks.genes[name])
        keep = positions >= 0
        np.add.at(total, positions[keep], blocks.vectors[name][keep])
    return unit_rows(total)


def _pair_positions(blocks: GeneBlocks, pairs: GenePairs) -> dict[str, np.ndarray]:
    """Per dataset, each pair gene's row in that dataset (-1 where it lacks the gene)."""
    index = pd.Index(pairs.genes)
    out = {}
    for name in blocks.datasets:
        position = np.full(pairs.genes.size, -1)
        rows = index.get_indexer(blocks.genes[name])
        position[rows[rows >= 0]] = np.flatnonzero(rows >= 0)
        out[name] = position
    return out


def profile_similarity(blocks: GeneBlocks, pairs: GenePairs, chunk: int = 4096) -> np.ndarray:
    """Mean over every dataset x holding the first gene and y holding the second of the
    Pearson correlation of the two profiles over the genes x and y share (within one
    dataset: over all its genes). NaN where x and y share fewer than 3 genes."""
    if blocks.columns is None:
        raise ValidationError("These vectors are not co-expression profiles.")
    total = np.zeros(pairs.first.size)
    count = np.zeros(pairs.first.size)
    positions = _pair_positions(blocks, pairs)
    for x in blocks.datasets:
        for y in blocks.datasets:
            pa, pb = positions[x][pairs.first], positions[y][pairs.second]
            todo = np.flatnonzero((pa >= 0) & (pb >= 0))
            if todo.size == 0:
                continue
            P, Q = blocks.vectors[x], blocks.vectors[y]
            rows_a, rows_b = pa[todo], pb[todo]
            if x != y:
                _, cx, cy = np.intersect1d(
                    blocks.columns[x], blocks.columns[y], assume_unique=True, return_indices=True
                )
                if cx.size < 3:
                    continue
                # Restandardised over the shared genes (Pearson over those alone), once per
                # gene rather than once per pair: a gene is in many pairs.
                used_a, rows_a = np.unique(rows_a, return_inverse=True)
                used_b, rows_b = np.unique(rows_b, return_inverse=True)
                P = _standard_rows(P[np.ix_(used_a, cx)])
                Q = _standard_rows(Q[np.ix_(used_b, cy)])
            for start in range(0, todo.size, chunk):
                k = slice(start, start + chunk)
                total[todo[k]] += np.einsum("ij,ij->i", P[rows_a[k]], Q[rows_b[k]])
                count[todo[k]] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def unified_similarity(blocks: GeneBlocks, pairs: GenePairs) -> np.ndarray:
    """Cosine of the genes' mean vectors; for profiles, :func:`profile_similarity` over
    every pair of datasets; otherwise (no shared space) ``within`` with 0 for pairs no
    dataset holds together."""
    if blocks.columns is not None:
        return np.nan_to_num(profile_similarity(blocks, pairs), nan=0.0)
    if not blocks.shared_space:
        return np.nan_to_num(within_similarity(blocks, pairs), nan=0.0)
    U = gene_mean_vectors(blocks, pairs.genes)
    return np.einsum("ij,ij->i", U[pairs.first], U[pairs.second])


def restrict_universe(universe: PairUniverse, genes: np.ndarray) -> PairUniverse:
    """The universe of one dataset holding ``genes``: its annotated genes (in the same
    order), whether they share a set, and every pair held together once."""
    keep = np.flatnonzero(np.isin(universe.genes, genes))
    return PairUniverse(
        universe.genes[keep],
        universe.shares_set[np.ix_(keep, keep)],
        np.ones((keep.size, keep.size), dtype=np.int32),
        np.ones((keep.size, 1), dtype=np.float32),
        universe.membership[keep],
        universe.set_sizes,
    )


def per_dataset_coherence(
    blocks: GeneBlocks,
    gene_sets: Mapping[str, Sequence[str]],
    per_class: int = PAIRS_PER_CLASS_PER_DATASET,
    seed: int = 0,
    universe: PairUniverse | None = None,
) -> dict[str, float]:
    """Per dataset, the AUROC of its own cosines over pairs of its own genes (NaN when it
    holds no pair sharing a set, or none sharing none). ``universe``: the blocks' pair
    universe of ``gene_sets``, when the caller has it already."""
    universe = universe or pair_universe(blocks, gene_sets)
    out = {}
    for name in blocks.datasets:
        alone = GeneBlocks(
            {name: blocks.genes[name]}, {name: blocks.vectors[name]}, blocks.shared_space
        )
        own = restrict_universe(universe, blocks.genes[name])
        pairs = sample_gene_pairs(alone, gene_sets, "within", per_class, seed, universe=own)
        out[name] = binary_auc(pairs.label, within_similarity(alone, pairs))
    return out


def _auc_by_bin(
    label: np.ndarray, score: np.ndarray, values: np.ndarray, bins, negatives_in_every_bin: bool
) -> dict[str, float]:
    """AUROC of ``score`` per bin of ``values`` (inclusive bounds); with
    ``negatives_in_every_bin`` only the positives are binned and each bin is scored against
    all negatives."""
    out = {}
    for low, high, name in bins:
        keep = (values >= low) & (values <= high)
        if negatives_in_every_bin:
            keep |= ~label
        out[name] = binary_auc(label[keep], score[keep])
    return out


def coherence_scores(
    blocks: GeneBlocks, libraries: Mapping[str, Mapping[str, Sequence[str]]], seed: int = 0
) -> dict[str, float]:
    """``coherence_within:<lib>``, ``coherence_unified:<lib>``,
    ``coherence_per_dataset:<lib>`` (mean over datasets; NaN if none can be scored), both
    measures against gene-matched negatives (:func:`gene_matched_pairs`),
    ``coherence_within_matched:<lib>`` and ``coherence_unified_matched:<lib>``, and two
    breakdowns of ``within`` and ``unified``: by datasets holding both genes,
    ``coherence_within[<bin>]:<lib>`` (bin "0", unified only: no dataset holds both; also
    ``coherence_within_per_set[<bin>]:<lib>``, each bin's pairs against the negatives of the
    same bin), and by the size of the smallest set the positive pair shares,
    ``coherence_within_by_set_size[<bin>]:<lib>`` (:data:`SET_SIZE_BINS`); and both with
    every set weighing the same, ``coherence_within_per_set:<lib>`` and
    ``coherence_unified_per_set:<lib>`` (positives of :func:`sample_pairs_per_set`, the
    same negatives)."""
    out: dict[str, float] = {}
    for lib, sets in libraries.items():
        universe = pair_universe(blocks, sets)
        for scope, similarity, held_bins in (
            ("within", within_similarity, SHARED_BINS),
            ("unified", unified_similarity, UNIFIED_BINS),
        ):
            pairs = sample_gene_pairs(blocks, sets, scope, seed=seed, universe=universe)
            score = similarity(blocks, pairs)
            out[f"coherence_{scope}:{lib}"] = binary_auc(pairs.label, score)
            by_held = _auc_by_bin(pairs.label, score, pairs.n_shared, held_bins, False)
            smallest = smallest_shared_set(universe, pairs.first, pairs.second)
            by_size = _auc_by_bin(pairs.label, score, smallest, SET_SIZE_BINS, True)
            out.update({f"coherence_{scope}[{k}]:{lib}": v for k, v in by_held.items()})
            out.update({f"coherence_{scope}_by_set_size[{k}]:{lib}": v for k, v in by_size.items()})
            negatives = ~pairs.label
            per_set = sample_pairs_per_set(universe, scope, int(negatives.sum()), seed=seed)
            label = np.r_[per_set.label, pairs.label[negatives]]
            per_set_score = np.r_[similarity(blocks, per_set), score[negatives]]
            out[f"coherence_{scope}_per_set:{lib}"] = binary_auc(label, per_set_score)
            held = np.r_[per_set.n_shared, pairs.n_shared[negatives]]
            by_held = _auc_by_bin(label, per_set_score, held, held_bins, False)
            out.update({f"coherence_{scope}_per_set[{k}]:{lib}": v for k, v in by_held.items()})
            if scope == "within":
                own = per_dataset_coherence(blocks, sets, seed=seed, universe=universe)
                own = np.array(list(own.values()))
                own = own[np.isfinite(own)]
                out[f"coherence_per_dataset:{lib}"] = (
                    float(own.mean()) if own.size else float("nan")
                )
            matched = gene_matched_pairs(pairs, universe, scope, seed=seed)
            out[f"coherence_{scope}_matched:{lib}"] = binary_auc(
                matched.label, similarity(blocks, matched)
            )
    return out


# --------------------------------------------------------------- graph and genes
def edge_auc_by_dataset(blocks: GeneBlocks, graphs: Mapping[str, Any]) -> dict[str, float]:
    """Per dataset, AUROC of cosine for graph edges against non-edges (off-diagonal)."""
    out = {}
    for name, graph in graphs.items():
        name = str(name)
        if name not in blocks.genes:
            continue
        positions = pd.Index(list(graph.genes)).get_indexer(blocks.genes[name])
        keep = np.flatnonzero(positions >= 0)
        if keep.size < 3:
            continue
        V = blocks.vectors[name][keep]
        A = sp.csr_matrix(graph.adjacency)[positions[keep]][:, positions[keep]]
        A = ((A + A.T) != 0).toarray()
        upper = np.triu_indices(keep.size, k=1)
        out[name] = binary_auc(A[upper], (V @ V.T)[upper])
    return out


def same_gene_alignment(blocks: GeneBlocks) -> dict[str, float]:
    """How a gene's instances in two datasets meet, over all ordered instance pairs.

    ``cosine``: median cosine of the two instances. ``percentile``: median fraction of
    dataset b's other rows that are closer to the gene's row in a than the gene's own row
    in b (0 = the nearest row, 0.01 = top 1%). ``top1``: the fraction of instance pairs
    whose other instance is the nearest row. NaN without a shared space or shared genes.
    """
    nan = {"cosine": float("nan"), "percentile": float("nan"), "top1": float("nan"), "pairs": 0}
    if not blocks.shared_space:
        return nan
    cosines, percentiles = [], []
    names = blocks.datasets
    for a in names:
        index_a = pd.Index(blocks.genes[a])
        for b in names:
            if a == b:
                continue
            positions = index_a.get_indexer(blocks.genes[b])
            in_b = np.flatnonzero(positions >= 0)
            if in_b.size == 0 or blocks.genes[b].size < 2:
                continue
            Za = blocks.vectors[a][positions[in_b]]
            S = Za @ blocks.vectors[b].T
            own = S[np.arange(in_b.size), in_b]
            closer = (own[:, None] < S).sum(axis=1)
            cosines.append(own)
            percentiles.append(closer / (blocks.genes[b].size - 1))
    if not cosines:
        return nan
    c, p = np.concatenate(cosines), np.concatenate(percentiles)
    return {
        "cosine": float(np.median(c)),
        "percentile": float(np.median(p)),
        "top1": float(np.mean(p == 0)),
        "pairs": int(c.size),
    }


def function_scores(
    blocks: GeneBlocks,
    graphs: Mapping[str, Any],
    libraries: Mapping[str, Mapping[str, Sequence[str]]],
    seed: int = 0,
) -> dict[str, float]:
    """Every gene-level measure of one method: coherence, edge AUC, alignment."""
    row = coherence_scores(blocks, libraries, seed=seed)
    aucs = edge_auc_by_dataset(blocks, graphs)
    values = np.array([v for v in aucs.values() if np.isfinite(v)])
    row["edge_auc_median"] = float(np.median(values)) if values.size else float("nan")
    row["edge_auc_min"] = float(values.min()) if values.size else float("nan")
    for name, value in aucs.items():
        row[f"edge_auc[{name}]"] = value
    alignment = same_gene_alignment(blocks)
    row["same_gene_cosine"] = alignment["cosine"]
    row["same_gene_percentile"] = alignment["percentile"]
    row["same_gene_top1"] = alignment["top1"]
    return row

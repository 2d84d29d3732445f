"""The three MuSe-GNN losses as plain functions of tensors.

Per step, dataset t is paired with a dataset s::

    total = reconstruction(t) + lambda_S * similarity(t, s) + lambda_C * contrastive(t, s)

with ``lambda_S = 1`` and ``lambda_C = 0.01`` by default (:func:`total_loss`). The
reconstruction is dense (BCE over all n^2 pairs, the reference) or sampled (the edges
against as many random non-edges, :func:`sampled_reconstruction_loss`); the similarity
term is the reference's weighted cosine or a weighted InfoNCE over the shared genes
(:func:`shared_gene_contrastive_loss`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import SIMILARITY_NORMALISATIONS
from .pairs import PairStats


def _zero(*tensors: torch.Tensor) -> torch.Tensor:
    """A 0 that is still attached to the inputs' graph (backward works, grads are 0)."""
    return sum((t[:0].sum() for t in tensors), start=tensors[0].new_zeros(()))


def reconstruction_loss(logits: torch.Tensor, target_dense: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy with logits over all n^2 entries (diagonal included)."""
    if logits.shape != target_dense.shape:
        raise ValueError(f"logits {tuple(logits.shape)} vs target {tuple(target_dense.shape)}")
    return F.binary_cross_entropy_with_logits(logits, target_dense.to(logits.dtype))


def sampled_reconstruction_loss(
    positive_logits: torch.Tensor, negative_logits: torch.Tensor
) -> torch.Tensor:
    """Edges against sampled non-edges, as PyG's ``GAE.recon_loss``: the mean BCE of the
    edges plus the mean BCE of the non-edges, so both classes weigh the same however sparse
    the graph is, and the cost grows with the edges, not with n^2."""
    pos = F.binary_cross_entropy_with_logits(positive_logits, torch.ones_like(positive_logits))
    neg = F.binary_cross_entropy_with_logits(negative_logits, torch.zeros_like(negative_logits))
    return pos + neg


def sample_non_edges(
    edge_keys: torch.Tensor, n_nodes: int, count: int, generator: torch.Generator
) -> torch.Tensor:
    """``2 x count`` random gene pairs ``u != v`` that are not edges.

    ``edge_keys`` are the sorted keys ``u * n_nodes + v`` of the graph's (directed) edges.
    Draws that hit an edge or a self-pair are replaced by fresh draws (a few rounds); on a
    graph too dense to find enough, fewer pairs come back.
    """
    device = edge_keys.device
    found, total = [], 0
    for _ in range(8):
        need = count - total
        if need <= 0:
            break
        draw = max(need + need // 8, 16)
        u = torch.randint(n_nodes, (draw,), generator=generator, device=generator.device)
        v = torch.randint(n_nodes, (draw,), generator=generator, device=generator.device)
        u, v = u.to(device), v.to(device)
        keys = u * n_nodes + v
        slot = torch.searchsorted(edge_keys, keys).clamp_max(max(edge_keys.numel() - 1, 0))
        is_edge = edge_keys[slot] == keys if edge_keys.numel() else torch.zeros_like(u, dtype=bool)
        keep = (u != v) & ~is_edge
        pairs = torch.stack([u[keep], v[keep]])[:, :need]
        found.append(pairs)
        total += pairs.shape[1]
    return torch.cat(found, dim=1) if found else torch.zeros(2, 0, dtype=torch.long, device=device)


def weighted_similarity_loss(
    z_t: torch.Tensor,
    z_s: torch.Tensor,
    common_t: torch.Tensor,
    common_s: torch.Tensor,
    weights: torch.Tensor,
    normalisation: str = "count",
) -> torch.Tensor:
    """Weighted cosine of the common genes' two embeddings, negated; 0 if there are none.

    ``"count"`` (the reference): ``-sum_g w(g) cos(g) / |common|``. Its scale is the
    mean Jaccard weight, which shrinks as graphs get sparser (a neighbour cap or a
    multiple-testing correction gives weights of a few hundredths), so the pull
    between datasets fades with graph density. ``"weight"``: ``-sum_g w(g) cos(g) /
    sum_g w(g)``, the weighted mean cosine in [-1, 1]: the weights still rank which
    genes to trust, but the term's strength no longer depends on density.
    """
    if normalisation not in SIMILARITY_NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {SIMILARITY_NORMALISATIONS}")
    if common_t.numel() == 0:
        return _zero(z_t, z_s)
    cos = F.cosine_similarity(z_t[common_t], z_s[common_s], dim=1, eps=1e-8)
    weights = weights.to(cos.dtype)
    if normalisation == "weight":
        # All-zero weights give 0 / eps = 0 without a host sync.
        return -(weights * cos).sum() / weights.sum().clamp_min(1e-12)
    return -(weights * cos).mean()


def shared_gene_contrastive_loss(
    z_t: torch.Tensor,
    z_s: torch.Tensor,
    common_t: torch.Tensor,
    common_s: torch.Tensor,
    weights: torch.Tensor,
    n_samples: int = 256,
    temperature: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE between a gene's two instances, other shared genes as negatives.

    For ``m`` common genes drawn without replacement, ``L = cosine(z_t[g_i], z_s[g_j]) / T``
    (m x m); each row and each column is a softmax whose target is the same gene, and the
    2m cross-entropies are averaged with the genes' Jaccard weights (``sum w l / sum w``).
    The weighted cosine of :func:`weighted_similarity_loss` only pulls instances
    together, which a model can satisfy by squeezing every gene into one narrow cone;
    here a gene must be closer to its own other instance than to the other shared
    genes, which is what "the same gene in two datasets" means for a neighbour search.
    0 when fewer than two genes are shared or all sampled weights are 0.
    """
    c = common_t.numel()
    if c < 2:
        return _zero(z_t, z_s)
    if generator is None:
        generator = torch.Generator(device=common_t.device)
        generator.seed()
    pick = _sample(c, min(n_samples, c), generator, common_t.device)
    a = F.normalize(z_t[common_t[pick]], dim=1, eps=1e-8)
    b = F.normalize(z_s[common_s[pick]], dim=1, eps=1e-8)
    logits = (a @ b.T) / temperature
    target = torch.arange(pick.numel(), device=logits.device)
    per_gene = F.cross_entropy(logits, target, reduction="none") + F.cross_entropy(
        logits.T, target, reduction="none"
    )
    w = weights[pick].to(per_gene.dtype)
    return 0.5 * (w * per_gene).sum() / w.sum().clamp_min(1e-12)


def nt_xent_loss(
    anchors: torch.Tensor, positives: torch.Tensor, temperature: float = 0.07
) -> torch.Tensor:
    """SimCLR NT-Xent on ``X = [anchors; positives]`` with labels ``[0..k-1, 0..k-1]``.

    This is pytorch-metric-learning's ``SelfSupervisedLoss(NTXentLoss(t))`` in its
    symmetric form. With cosine similarities ``s``, for each of the 2k ordered positive
    pairs (i, p(i)), p(i) = the other copy of i's label::

        l_i = -log( exp(s_ip/t) / (exp(s_ip/t) + sum_{j: label_j != label_i} exp(s_ij/t)) )

    Every label has exactly two members, so the denominator runs over all j != i; the
    loss is the mean of the 2k terms, computed with logsumexp. One pair (k = 1) has no
    negatives and gives 0.
    """
    if anchors.shape != positives.shape or anchors.dim() != 2:
        raise ValueError(
            f"anchors {tuple(anchors.shape)} and positives {tuple(positives.shape)} must be "
            "two matrices of the same shape"
        )
    k = anchors.shape[0]
    if k == 0:
        return _zero(anchors, positives)
    x = F.normalize(torch.cat([anchors, positives]), dim=1)
    sim = (x @ x.T) / temperature
    eye = torch.eye(2 * k, dtype=torch.bool, device=sim.device)
    sim = sim.masked_fill(eye, float("-inf"))
    rows = torch.arange(2 * k, device=sim.device)
    partner = (rows + k) % (2 * k)
    return (torch.logsumexp(sim, dim=1) - sim[rows, partner]).mean()


def _sample(n: int, m: int, generator: torch.Generator, device) -> torch.Tensor:
    """``m`` distinct positions out of ``n`` (without replacement)."""
    return torch.randperm(n, generator=generator, device=generator.device)[:m].to(device)


def contrastive_loss(
    z_t: torch.Tensor,
    z_s: torch.Tensor,
    pair: PairStats,
    n_samples: int = 100,
    temperature: float = 0.07,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """NT-Xent on genes of t not in s and of s not in t, each paired with a graph neighbour.

    Anchors ``[z_t[only_t[I_t]]; z_s[only_s[I_s]]]``, positives the same rows at the
    drawn neighbours; every other sampled gene or neighbour, of either graph, is a
    negative. Differences from the reference (deliberate fixes):

    * ``I_t`` and ``I_s`` are drawn independently, of sizes ``min(n_samples, |only_t|)``
      and ``min(n_samples, |only_s|)``; the reference used one index set for both,
      which only works when both graphs have the same number of genes;
    * sampling is WITHOUT replacement (``torch.randperm``): the reference's
      ``np.random.choice`` drew with replacement, so a gene drawn twice became its own
      (false) negative.

    Returns 0 (attached to the graph) if either difference set is empty.
    ``generator`` (a ``torch.Generator``) makes the draws reproducible.
    """
    n_t, n_s = pair.only_t.numel(), pair.only_s.numel()
    if n_t == 0 or n_s == 0 or n_samples < 1:
        return _zero(z_t, z_s)
    if generator is None:
        generator = torch.Generator()
        generator.seed()
    idx_t = _sample(n_t, min(n_samples, n_t), generator, pair.only_t.device)
    idx_s = _sample(n_s, min(n_samples, n_s), generator, pair.only_s.device)
    anchors = torch.cat([z_t[pair.only_t[idx_t]], z_s[pair.only_s[idx_s]]])
    positives = torch.cat([z_t[pair.neighbour_only_t[idx_t]], z_s[pair.neighbour_only_s[idx_s]]])
    return nt_xent_loss(anchors, positives, temperature)


def total_loss(
    logits_t: torch.Tensor,
    target_t: torch.Tensor,
    z_t: torch.Tensor,
    z_s: torch.Tensor,
    pair: PairStats,
    config,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``reconstruction + lambda_S * similarity + lambda_C * contrastive`` and its parts,
    with the dense reconstruction of :func:`reconstruction_loss` (see :func:`combine_losses`).
    """
    return combine_losses(
        reconstruction_loss(logits_t, target_t), z_t, z_s, pair, config, generator
    )


def combine_losses(
    reconstruction: torch.Tensor,
    z_t: torch.Tensor,
    z_s: torch.Tensor,
    pair: PairStats,
    config,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``reconstruction + lambda_S * similarity + lambda_C * contrastive`` and its parts.

    ``config`` is a :class:`~musegnn_core.model.config.ModelConfig`. The contrastive term
    is not computed when its weight is 0. Unlike the reference, it is kept when t and s
    share no gene (the reference skipped it then, although it needs no common gene).
    The dict holds the three unweighted terms, detached (call ``.item()`` to log them;
    no device sync happens here).
    """
    rec = reconstruction
    if config.alignment == "contrastive":
        sim = shared_gene_contrastive_loss(
            z_t,
            z_s,
            pair.common_t,
            pair.common_s,
            pair.weights,
            config.alignment_samples,
            config.alignment_temperature,
            generator,
        )
    else:
        sim = weighted_similarity_loss(
            z_t, z_s, pair.common_t, pair.common_s, pair.weights, config.similarity_normalisation
        )
    if config.lambda_contrastive > 0:
        con = contrastive_loss(
            z_t, z_s, pair, config.contrastive_samples, config.temperature, generator
        )
    else:
        con = _zero(z_t, z_s)
    total = rec + config.lambda_similarity * sim + config.lambda_contrastive * con
    parts = {
        "reconstruction": rec.detach(),
        "similarity": sim.detach(),
        "contrastive": con.detach(),
    }
    return total, parts

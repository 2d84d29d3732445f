"""Losses against hand computations and direct formula implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from musegnn_core.model import losses
from musegnn_core.model.config import ModelConfig
from musegnn_core.model.losses import (
    contrastive_loss,
    nt_xent_loss,
    reconstruction_loss,
    total_loss,
    weighted_similarity_loss,
)
from musegnn_core.model.pairs import PairStats

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _long(values):
    return torch.tensor(values, dtype=torch.long)


def _pair(common_t=(), common_s=(), weights=(), only_t=(), only_s=(), nb_t=(), nb_s=()):
    return PairStats(
        common_t=_long(list(common_t)),
        common_s=_long(list(common_s)),
        weights=torch.tensor(list(weights), dtype=torch.float32),
        only_t=_long(list(only_t)),
        only_s=_long(list(only_s)),
        neighbour_only_t=_long(list(nb_t)),
        neighbour_only_s=_long(list(nb_s)),
    )


# --- reconstruction -------------------------------------------------------------------


def test_reconstruction_matches_hand_computation():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
    target = torch.tensor([[1, 0], [0, 1]], dtype=torch.uint8)
    # -log(sigmoid(x)) = log(1 + e^-x); -log(1 - sigmoid(x)) = log(1 + e^x)
    expected = (
        math.log(2.0)
        + math.log(1 + math.e**2)
        + math.log(1 + math.e**-1)
        + math.log(1 + math.e**-3)
    ) / 4
    assert reconstruction_loss(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_reconstruction_rejects_shape_mismatch():
    with pytest.raises(ValueError):
        reconstruction_loss(torch.zeros(3, 3), torch.zeros(3, 2))


# --- weighted similarity --------------------------------------------------------------


def test_weighted_similarity_matches_hand_computation():
    z_t = torch.tensor([[1.0, 0.0], [0.5, 0.5], [1.0, 1.0]], requires_grad=True)
    z_s = torch.tensor([[0.0, 1.0], [3.0, 4.0], [2.0, 2.0], [1.0, 2.0]])
    # common genes: t0 <-> s3 (weight 0.5), t2 <-> s1 (weight 0.25)
    cos_1 = (1 * 1 + 0 * 2) / (1.0 * math.sqrt(5))
    cos_2 = (1 * 3 + 1 * 4) / (math.sqrt(2) * 5.0)
    expected = -(0.5 * cos_1 + 0.25 * cos_2) / 2
    loss = weighted_similarity_loss(
        z_t, z_s, _long([0, 2]), _long([3, 1]), torch.tensor([0.5, 0.25])
    )
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert z_t.grad[1].abs().sum() == 0  # gene 1 of t is not common
    assert z_t.grad[0].abs().sum() > 0


def test_weight_normalised_similarity_is_the_weighted_mean_cosine():
    z_t = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    z_s = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    cos_1, cos_2 = 1 / math.sqrt(5), 7 / (math.sqrt(2) * 5.0)
    weights = torch.tensor([0.02, 0.06])
    common = _long([0, 1])
    weighted = weighted_similarity_loss(z_t, z_s, common, common, weights, "weight")
    assert weighted.item() == pytest.approx(-(0.02 * cos_1 + 0.06 * cos_2) / 0.08, rel=1e-6)
    # the reference form scales with the weights; this one only with their ratios
    count = weighted_similarity_loss(z_t, z_s, common, common, weights)
    assert count.item() == pytest.approx(-(0.02 * cos_1 + 0.06 * cos_2) / 2, rel=1e-6)
    ten_times = weighted_similarity_loss(z_t, z_s, common, common, 10 * weights, "weight")
    assert ten_times.item() == pytest.approx(weighted.item(), rel=1e-6)
    zero = weighted_similarity_loss(z_t, z_s, common, common, torch.zeros(2), "weight")
    assert zero.item() == 0.0
    with pytest.raises(ValueError):
        weighted_similarity_loss(z_t, z_s, common, common, weights, "sum")


def test_weighted_similarity_without_common_genes_is_a_grad_safe_zero():
    z_t = torch.randn(4, 3, requires_grad=True)
    z_s = torch.randn(5, 3, requires_grad=True)
    empty = _long([])
    loss = weighted_similarity_loss(z_t, z_s, empty, empty, torch.zeros(0))
    assert loss.item() == 0.0 and loss.requires_grad
    (loss + z_t.sum()).backward()
    assert torch.isfinite(z_t.grad).all()
    assert z_s.grad is None or (z_s.grad == 0).all()


# --- NT-Xent --------------------------------------------------------------------------


def _nt_xent_loop(anchors: np.ndarray, positives: np.ndarray, tau: float) -> float:
    """Direct formula: mean over the 2k positive pairs of -log(e^pos / (e^pos + sum e^neg))."""
    x = np.concatenate([anchors, positives]).astype(np.float64)
    k = anchors.shape[0]
    labels = list(range(k)) * 2
    terms = []
    for i in range(2 * k):
        for p in range(2 * k):
            if p == i or labels[p] != labels[i]:
                continue
            sim = lambda a, b: float(x[a] @ x[b] / (np.linalg.norm(x[a]) * np.linalg.norm(x[b])))  # noqa: E731
            pos = math.exp(sim(i, p) / tau)
            neg = sum(math.exp(sim(i, j) / tau) for j in range(2 * k) if labels[j] != labels[i])
            terms.append(-math.log(pos / (pos + neg)))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("k,tau", [(2, 0.5), (5, 0.07), (9, 1.0)])
def test_nt_xent_matches_loop_formula(k, tau):
    rng = np.random.default_rng(k)
    a = rng.standard_normal((k, 4))
    p = a + 0.3 * rng.standard_normal((k, 4))
    got = nt_xent_loss(torch.tensor(a), torch.tensor(p), tau).item()
    assert got == pytest.approx(_nt_xent_loop(a, p, tau), rel=1e-9)


def test_nt_xent_explicit_numbers_on_orthogonal_vectors():
    # anchors e1, e2 and identical positives: s(a_k, p_k) = 1, everything else 0.
    e = torch.eye(2)
    tau = 0.5
    expected = -math.log(math.exp(2.0) / (math.exp(2.0) + 2.0))
    assert nt_xent_loss(e, e.clone(), tau).item() == pytest.approx(expected, rel=1e-6)


def test_nt_xent_is_stable_at_low_temperature_and_scale_invariant():
    torch.manual_seed(0)
    a, p = torch.randn(6, 8), torch.randn(6, 8)
    low = nt_xent_loss(a * 1e4, p * 1e4, 0.001)
    assert torch.isfinite(low)
    assert nt_xent_loss(a, p, 0.3).item() == pytest.approx(nt_xent_loss(5 * a, 5 * p, 0.3).item())


def test_nt_xent_single_pair_is_zero():
    assert nt_xent_loss(torch.randn(1, 3), torch.randn(1, 3), 0.07).item() == pytest.approx(0.0)


# --- contrastive ----------------------------------------------------------------------


@pytest.fixture
def capture(monkeypatch):
    calls = []
    real = losses.nt_xent_loss

    def spy(anchors, positives, temperature):
        calls.append((anchors.detach().clone(), positives.detach().clone(), temperature))
        return real(anchors, positives, temperature)

    monkeypatch.setattr(losses, "nt_xent_loss", spy)
    return calls


def _rows(z: torch.Tensor) -> dict[tuple, int]:
    return {tuple(r.tolist()): i for i, r in enumerate(z)}


def test_contrastive_samples_each_side_independently_without_replacement(capture):
    torch.manual_seed(1)
    z_t, z_s = torch.randn(20, 4), torch.randn(9, 4)
    only_t, only_s = list(range(3, 20)), [0, 2, 4, 6, 8]  # 17 and 5 unshared genes
    nb_t = [(g + 1) % 20 for g in only_t]
    nb_s = [(g + 1) % 9 for g in only_s]
    pair = _pair(only_t=only_t, only_s=only_s, nb_t=nb_t, nb_s=nb_s)
    gen = torch.Generator().manual_seed(0)
    loss = contrastive_loss(z_t, z_s, pair, n_samples=8, temperature=0.07, generator=gen)
    anchors, positives, tau = capture[0]
    assert tau == 0.07
    assert anchors.shape == (8 + 5, 4)  # min(8, 17) from t, min(8, 5) from s
    rows_t, rows_s = _rows(z_t), _rows(z_s)
    picked_t = [rows_t[tuple(r.tolist())] for r in anchors[:8]]
    picked_s = [rows_s[tuple(r.tolist())] for r in anchors[8:]]
    assert len(set(picked_t)) == 8 and set(picked_t) <= set(only_t)  # no replacement
    assert sorted(picked_s) == only_s
    for k, g in enumerate(picked_t):
        assert torch.equal(positives[k], z_t[nb_t[only_t.index(g)]])
    for k, g in enumerate(picked_s):
        assert torch.equal(positives[8 + k], z_s[nb_s[only_s.index(g)]])
    assert loss.item() == pytest.approx(_nt_xent_loop(anchors.numpy(), positives.numpy(), 0.07))


def test_contrastive_is_deterministic_given_the_generator_seed():
    torch.manual_seed(2)
    z_t, z_s = torch.randn(40, 5), torch.randn(30, 5)
    pair = _pair(
        only_t=range(40), only_s=range(30), nb_t=[(i + 1) % 40 for i in range(40)],
        nb_s=[(i + 1) % 30 for i in range(30)],
    )  # fmt: skip

    def run(seed):
        return contrastive_loss(z_t, z_s, pair, 10, 0.07, torch.Generator().manual_seed(seed))

    assert run(5).item() == run(5).item()
    assert run(5).item() != run(6).item()


def test_contrastive_is_zero_when_one_side_is_empty():
    z_t = torch.randn(5, 3, requires_grad=True)
    z_s = torch.randn(5, 3, requires_grad=True)
    pair = _pair(only_t=[0, 1], nb_t=[1, 0])
    loss = contrastive_loss(z_t, z_s, pair, 100, 0.07, torch.Generator().manual_seed(0))
    assert loss.item() == 0.0
    loss.backward()  # attached to the graph, gradient zero


def test_total_loss_combines_the_three_terms_with_configured_weights():
    torch.manual_seed(3)
    z_t = torch.randn(6, 4, requires_grad=True)
    z_s = torch.randn(5, 4, requires_grad=True)
    logits = z_t @ z_t.T
    target = (torch.rand(6, 6) > 0.5).float()
    pair = _pair(
        common_t=[0, 1], common_s=[2, 3], weights=[0.5, 1.0], only_t=[2, 3, 4, 5],
        only_s=[0, 1, 4], nb_t=[3, 2, 5, 4], nb_s=[1, 0, 4],
    )  # fmt: skip
    config = ModelConfig(lambda_similarity=2.0, lambda_contrastive=0.5, contrastive_samples=3)
    total, parts = total_loss(
        logits, target, z_t, z_s, pair, config, torch.Generator().manual_seed(0)
    )
    con = contrastive_loss(z_t, z_s, pair, 3, 0.07, torch.Generator().manual_seed(0))
    expected = (
        reconstruction_loss(logits, target)
        + 2.0 * weighted_similarity_loss(z_t, z_s, pair.common_t, pair.common_s, pair.weights)
        + 0.5 * con
    )
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert parts["contrastive"].item() == pytest.approx(con.item(), rel=1e-6)
    total.backward()
    assert z_s.grad.abs().sum() > 0

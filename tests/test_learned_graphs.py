"""The learned-graph reconstruction, the shared-gene InfoNCE and the cosine decoder, by hand."""

from __future__ import annotations

import math

import pytest
import torch

from musegnn_core.errors import ValidationError
from musegnn_core.model.losses import (
    sample_non_edges,
    sampled_reconstruction_loss,
    shared_gene_contrastive_loss,
)
from musegnn_core.model.module import CosineEdgeDecoder, undirected_edges
from musegnn_core.settings import ModelConfig, learning_rate_factor

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _bce(logit: float, label: int) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -math.log(p) if label else -math.log(1 - p)


def test_sampled_reconstruction_matches_hand_computation():
    pos = torch.tensor([2.0, -1.0, 0.5])
    neg = torch.tensor([-3.0, 1.0])
    expected = (_bce(2.0, 1) + _bce(-1.0, 1) + _bce(0.5, 1)) / 3 + (
        _bce(-3.0, 0) + _bce(1.0, 0)
    ) / 2
    assert sampled_reconstruction_loss(pos, neg).item() == pytest.approx(expected, rel=1e-6)


def test_sampled_reconstruction_weighs_both_classes_equally():
    # 1 edge and 100 non-edges, all predicted at logit 0: each class contributes log 2.
    loss = sampled_reconstruction_loss(torch.zeros(1), torch.zeros(100))
    assert loss.item() == pytest.approx(2 * math.log(2), rel=1e-6)


def test_non_edges_are_never_edges_or_self_pairs():
    n = 30
    adjacency = torch.zeros(n, n, dtype=torch.bool)
    for u in range(n):  # a dense-ish band: 1/3 of the pairs are edges
        for v in range(n):
            if 0 < abs(u - v) <= 5:
                adjacency[u, v] = True
    rows, cols = adjacency.nonzero(as_tuple=True)
    keys = torch.sort(rows * n + cols).values
    gen = torch.Generator().manual_seed(0)
    pairs = sample_non_edges(keys, n, 500, gen)
    assert pairs.shape == (2, 500)
    assert not adjacency[pairs[0], pairs[1]].any()
    assert (pairs[0] != pairs[1]).all()
    again = sample_non_edges(keys, n, 500, torch.Generator().manual_seed(0))
    assert torch.equal(pairs, again)


def test_undirected_edges_lists_each_edge_once_without_self_loops():
    import scipy.sparse as sp

    a = sp.csr_matrix([[1, 1, 0], [1, 1, 1], [0, 1, 1]])
    edges = undirected_edges(a)
    assert sorted(map(tuple, edges.T.tolist())) == [(0, 1), (1, 2)]


def test_cosine_decoder_is_scaled_cosine_plus_bias():
    decoder = CosineEdgeDecoder(scale=4.0, bias=-1.0)
    z = torch.tensor([[1.0, 0.0], [3.0, 3.0], [0.0, -2.0]])
    dense = decoder(z)
    assert dense[0, 1].item() == pytest.approx(4 * math.sqrt(0.5) - 1, rel=1e-5)
    assert dense[0, 2].item() == pytest.approx(-1.0, abs=1e-6)
    pairs = torch.tensor([[0, 1], [1, 2]])
    assert torch.allclose(decoder.edge_logits(z, pairs), dense[pairs[0], pairs[1]], atol=1e-6)


def test_shared_gene_contrastive_matches_hand_computation():
    # Two shared genes, unit vectors; cosine matrix [[1, 0], [0, 1]] / T.
    z_t = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z_s = torch.tensor([[3.0, 0.0], [0.0, 1.0]])
    common = torch.tensor([0, 1])
    t = 0.5
    per_row = -math.log(math.exp(1 / t) / (math.exp(1 / t) + math.exp(0)))
    for weights in ([1.0, 1.0], [0.2, 0.6]):
        loss = shared_gene_contrastive_loss(
            z_t, z_s, common, common, torch.tensor(weights), 10, t, torch.Generator()
        )
        assert loss.item() == pytest.approx(per_row, rel=1e-5)  # rows and columns agree
    # Swapped instances: each gene is nearer the other gene's instance.
    swapped = shared_gene_contrastive_loss(
        z_t, z_s.flip(0), common, common, torch.ones(2), 10, t, torch.Generator()
    )
    assert swapped.item() > loss.item()


def test_shared_gene_contrastive_weights_each_gene():
    z_t = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    z_s = torch.tensor([[1.0, 0.0], [1.0, 0.2], [1.0, 1.0]])
    common = torch.tensor([0, 1, 2])
    gen = torch.Generator()
    only_first = shared_gene_contrastive_loss(
        z_t, z_s, common, common, torch.tensor([1.0, 0.0, 0.0]), 10, 0.1, gen
    )
    logits = (
        torch.nn.functional.normalize(z_t, dim=1)
        @ torch.nn.functional.normalize(z_s, dim=1).T
        / 0.1
    )
    expected = 0.5 * (
        torch.logsumexp(logits[0], 0)
        - logits[0, 0]
        + torch.logsumexp(logits[:, 0], 0)
        - logits[0, 0]
    )
    assert only_first.item() == pytest.approx(expected.item(), rel=1e-5)


def test_sampled_reconstruction_refuses_the_mlp_decoder():
    with pytest.raises(ValidationError, match="MLP decoder"):
        ModelConfig(decoder="mlp", reconstruction="sampled")


def test_cosine_schedule_decays_to_a_tenth():
    assert learning_rate_factor("constant", 7, 10) == 1.0
    assert learning_rate_factor("cosine", 1, 60) == pytest.approx(1.0)
    assert learning_rate_factor("cosine", 60, 60) == pytest.approx(0.1)
    assert learning_rate_factor("cosine", 30, 59) == pytest.approx(0.55)


def test_positive_edges_drop_negative_correlations_and_keep_self_loops():
    import numpy as np
    import scipy.sparse as sp

    from musegnn_core.graphs.build import keep_positive_edges

    adjacency = sp.csr_matrix(np.array([[1, 1, 1, 0], [1, 1, 0, 1], [1, 0, 1, 1], [0, 1, 1, 1]]))
    est = np.array([[1, 0.4, -0.3, 0], [0.4, 1, 0, np.nan], [-0.3, 0, 1, 0.2], [0, np.nan, 0.2, 1]])
    kept = keep_positive_edges(adjacency, est).toarray()
    assert kept.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]


def test_partner_reconstruction_and_schedule_train_end_to_end(tmp_path):
    """A short run with every new option: losses finite, learning rate decayed."""
    from musegnn_core.data.demo import fill_demo
    from musegnn_core.graphs.build import GraphConfig
    from musegnn_core.train import load_checkpoint, make_config, train
    from musegnn_core.workspace import Workspace

    ws = Workspace.open(tmp_path / "ws")
    fill_demo(ws, prefer_simulated=True)
    config = make_config(
        "quick",
        epochs=4,
        lr_schedule="cosine",
        reconstruct_partner=True,
        decoder="cosine",
        reconstruction="sampled",
        alignment="contrastive",
        shared_gene_vectors=True,
        graph=GraphConfig(n_genes=80, selection="shared", edges_per_gene=10, edge_sign="positive"),
    )
    run = train(ws, config, run_name="all-options")
    losses = run.losses()
    assert losses[["reconstruction", "similarity", "contrastive"]].notna().all().all()
    state = load_checkpoint(run, torch.device("cpu"))
    lrs = [g["lr"] for g in state["optimizer"]["param_groups"]]
    assert lrs[0] == pytest.approx(config.lr_encoder * 0.1)
    # One row per distinct gene of the run, saved with the model; a resumed run rebuilds the
    # same vocabulary from its graphs and loads them.
    n_genes = run.embedding().obs["gene"].nunique()
    width = config.model.hidden * config.model.heads1  # layer 1's output, where they are added
    assert state["model"]["gene_vectors.weight"].shape == (n_genes, width)
    resumed = train(ws, make_config("quick", epochs=5), run_name="all-options", resume=True)
    assert len(resumed.losses()) == 5

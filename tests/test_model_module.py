"""The MuSe-GNN module: sharing, shapes, configuration and a short training run."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch_geometric.nn import TransformerConv

from musegnn_core.errors import ValidationError
from musegnn_core.model import (
    AttentionConv,
    AttentionGraph,
    CosineEdgeDecoder,
    DatasetSpec,
    ModelConfig,
    MuSeGNNModule,
    attention,
    compute_all_pair_stats,
    dense_target,
    edge_index_from_adjacency,
    sharing_group,
    total_loss,
)
from musegnn_core.model.attention import SparseAttention

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _n_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _random_inputs(n_genes, n_cells, seed, density=0.3):
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.random((n_genes, n_genes)) < density, 1)
    a = upper | upper.T
    np.fill_diagonal(a, True)
    adjacency = sp.csr_matrix(a.astype(np.uint8))
    x = torch.from_numpy(rng.standard_normal((n_genes, n_cells)).astype(np.float32))
    return x, edge_index_from_adjacency(adjacency), dense_target(adjacency)


# --- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hidden": 0},
        {"heads1": -1},
        {"embedding_dim": 2.5},
        {"decoder": "edge"},
        {"share": "tissue"},
        {"lambda_similarity": -1.0},
        {"lambda_contrastive": float("nan")},
        {"temperature": 0.0},
        {"contrastive_samples": 0},
        {"resample_neighbours": "yes"},
        {"heads2": True},
    ],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValidationError):
        ModelConfig(**kwargs)


def test_config_defaults_and_sharing_group():
    c = ModelConfig()
    assert (c.hidden, c.heads1, c.heads2, c.embedding_dim) == (32, 4, 2, 32)
    assert (c.lambda_similarity, c.lambda_contrastive, c.temperature) == (1.0, 0.01, 0.07)
    assert (c.contrastive_samples, c.decoder, c.share) == (100, "mlp", "group")
    assert sharing_group("heart", "scrna", "group") == "scrna_heart"
    assert sharing_group("heart", "scrna", "global") == "global"
    with pytest.raises(ValidationError):
        sharing_group("heart", "scrna", "everything")


# --- structure and sharing --------------------------------------------------------------


def _three_datasets(config=None):
    specs = [
        DatasetSpec("heart.a", n_cells=11, n_genes=7, group="scrna_heart"),
        DatasetSpec("heart b", n_cells=5, n_genes=12, group="scrna_heart"),
        DatasetSpec("brain/c", n_cells=9, n_genes=10, group="spatial_brain"),
    ]
    torch.manual_seed(0)
    return specs, MuSeGNNModule(specs, config or ModelConfig())


def test_parameter_counts_match_the_reference():
    _, model = _three_datasets()
    layer1 = model.dataset_module(0)
    assert _n_params(layer1.conv) + _n_params(layer1.norm) == 512 * 11 + 896
    assert _n_params(model.group_module(0)) == 58_048
    assert _n_params(layer1.decoder) == 3 * (7 * 7 + 7)


def test_parameters_are_shared_within_a_group_and_not_across():
    _, model = _three_datasets()
    assert model.group_of(0) == model.group_of(1) == "scrna_heart"
    assert model.group_of(2) == "spatial_brain"
    g0, g1, g2 = (model.group_module(i) for i in range(3))
    assert g0 is g1 and g0 is not g2
    assert g0.conv.lin_key.weight is g1.conv.lin_key.weight
    assert g0.residual.lin_value.weight is not g2.residual.lin_value.weight
    assert model.dataset_module(0).conv is not model.dataset_module(1).conv
    assert len(model.groups) == 2 and len(model.datasets) == 3

    x, edges, _ = _random_inputs(7, 11, seed=1)
    model.encode(0, x, edges).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in g0.parameters())
    assert all(p.grad is None for p in g2.parameters())
    assert all(p.grad is None for p in model.dataset_module(1).parameters())
    assert all(p.grad is None for p in model.dataset_module(2).parameters())


def test_shared_gene_vectors_tie_a_genes_instances_across_datasets():
    # Gene 7 of the vocabulary is row 0 of dataset a and row 3 of dataset b; gene 5 is in
    # a only. A loss on dataset a reaches gene 7's vector, so b's encoding of it changes.
    specs = [
        DatasetSpec("a", n_cells=6, n_genes=4, group="g", gene_ids=np.array([7, 5, 0, 1])),
        DatasetSpec("b", n_cells=5, n_genes=4, group="g", gene_ids=np.array([2, 3, 4, 7])),
    ]
    torch.manual_seed(0)
    model = MuSeGNNModule(specs, ModelConfig(shared_gene_vectors=True))
    assert model.gene_vectors.num_embeddings == 8
    assert model.gene_vectors.weight in set(model.encoder_parameters())
    x_a, edges_a, _ = _random_inputs(4, 6, seed=1)
    model.encode(0, x_a, edges_a)[0].sum().backward()
    grad = model.gene_vectors.weight.grad
    assert grad[7].abs().sum() > 0 and grad[[2, 3, 4]].abs().sum() == 0
    x_b, edges_b, _ = _random_inputs(4, 5, seed=2)
    with torch.no_grad():
        before = model.encode(1, x_b, edges_b)
        model.gene_vectors.weight[7] += 1.0
        after = model.encode(1, x_b, edges_b)
    assert not torch.allclose(before, after)
    # Without gene ids the option cannot work: said plainly, not an index error.
    with pytest.raises(ValidationError, match="gene ids"):
        MuSeGNNModule([DatasetSpec("c", 3, 4, "g")], ModelConfig(shared_gene_vectors=True))
    assert MuSeGNNModule([DatasetSpec("c", 3, 4, "g")]).gene_vectors is None


def test_global_sharing_uses_one_group():
    _, model = _three_datasets(ModelConfig(share="global"))
    assert {model.group_of(i) for i in range(3)} == {"global"}
    assert len(model.groups) == 1
    assert model.group_module(0) is model.group_module(2)


def test_module_keys_are_safe_and_distinct():
    specs = [
        DatasetSpec("a.b", 3, 4, "g.1"),
        DatasetSpec("a_b", 3, 4, "g_1"),
        DatasetSpec("", 3, 4, ""),
    ]
    model = MuSeGNNModule(specs, ModelConfig(decoder="inner"))
    assert len(model.datasets) == 3 and len(model.groups) == 3
    assert all("." not in k for k in [*model.datasets.keys(), *model.groups.keys()])
    with pytest.raises(ValidationError):
        MuSeGNNModule([specs[0], specs[0]], ModelConfig())
    with pytest.raises(ValidationError):
        MuSeGNNModule([], ModelConfig())


def test_optimiser_parameter_groups_partition_the_module():
    _, model = _three_datasets()
    enc = {id(p) for p in model.encoder_parameters()}
    dec = {id(p) for p in model.decoder_parameters()}
    assert enc.isdisjoint(dec)
    assert enc | dec == {id(p) for p in model.parameters()}
    layer1 = {id(p) for p in model.dataset_encoder_parameters()}
    shared = {id(p) for p in model.group_parameters()}
    assert layer1 | shared == enc and layer1.isdisjoint(shared)


# --- forward / backward ------------------------------------------------------------------


@pytest.mark.parametrize("decoder", ["mlp", "inner"])
def test_forward_backward_on_graphs_of_unequal_sizes(decoder):
    config = ModelConfig(decoder=decoder, contrastive_samples=4)
    specs, model = _three_datasets(config)
    inputs = [_random_inputs(s.n_genes, s.n_cells, seed=i) for i, s in enumerate(specs)]
    z = [model.encode(i, x, e) for i, (x, e, _) in enumerate(inputs)]
    assert [tuple(v.shape) for v in z] == [(7, 32), (12, 32), (10, 32)]
    logits = model.decode(1, z[1])
    assert logits.shape == (12, 12)
    if decoder == "inner":
        assert torch.allclose(logits, z[1] @ z[1].T)
        assert list(model.decoder_parameters()) == []
    genes = [[f"G{i}" for i in range(7)], [f"G{i}" for i in range(3, 15)], ["G0", "G5"]]
    genes[2] += [f"H{i}" for i in range(8)]
    graphs = [
        SimpleNamespace(genes=genes[i], adjacency=sp.csr_matrix(inputs[i][2].numpy()))
        for i in range(3)
    ]
    pairs = compute_all_pair_stats(graphs, seed=0)
    assert pairs[(1, 0)].n_common == 4 and pairs[(1, 2)].n_common == 1
    loss, parts = total_loss(
        logits, inputs[1][2], z[1], z[2], pairs[(1, 2)], config, torch.Generator().manual_seed(0)
    )
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(v) for v in parts.values())
    # t = dataset 1 and s = dataset 2 both got gradients, dataset 0 none
    assert model.dataset_module(1).conv.lin_query.weight.grad.abs().sum() > 0
    assert model.dataset_module(2).conv.lin_query.weight.grad.abs().sum() > 0
    assert model.dataset_module(0).conv.lin_query.weight.grad is None


@pytest.mark.parametrize("sparse", [True, False])
@pytest.mark.parametrize("heads", [1, 3])
def test_attention_conv_computes_pyg_transformer_conv(heads, sparse, monkeypatch):
    """The rewritten layer is PyG's TransformerConv: same outputs and gradients from the
    same weights, by sparse products (CPU) and edge by edge (elsewhere), on a directed
    graph given in no particular order, with a node that receives no edge."""
    monkeypatch.setattr(attention, "uses_sparse_kernels", lambda x: sparse)
    torch.manual_seed(0)
    ours = AttentionConv(6, 4, heads=heads)
    pyg = TransformerConv(6, 4, heads=heads)
    pyg.load_state_dict(ours.state_dict())
    edges = torch.tensor([[2, 1, 0, 3, 4, 0, 2, 2], [0, 1, 1, 0, 0, 3, 3, 4]])
    x = torch.randn(6, 6)
    x_ours, x_pyg = x.clone().requires_grad_(), x.clone().requires_grad_()
    y = torch.randn(6, heads * 4)
    out_ours, out_pyg = ours(x_ours, edges), pyg(x_pyg, edges)
    assert torch.allclose(out_ours, out_pyg, atol=1e-6)
    (out_ours * y).sum().backward()
    (out_pyg * y).sum().backward()
    assert torch.allclose(x_ours.grad, x_pyg.grad, atol=1e-6)
    assert x_ours.grad.abs().sum() > 0
    for (name, a), (_, b) in zip(ours.named_parameters(), pyg.named_parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-5), name
    # node 5 receives nothing: only its skip connection
    assert torch.allclose(out_ours[5], ours.lin_skip(x[5]), atol=1e-6)


def test_sparse_attention_passes_gradcheck():
    """The hand-written backward of the sparse products against finite differences."""
    torch.manual_seed(1)
    graph = AttentionGraph.from_edge_index(
        torch.tensor([[0, 1, 2, 3, 1, 2, 0], [1, 0, 0, 0, 2, 1, 3]]), n_nodes=4
    )
    q, k, v = (torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(
        lambda q, k, v: SparseAttention.apply(q, k, v, graph), (q, k, v)
    )


def test_cosine_decoder_scores_pairs_by_cosine():
    decoder = CosineEdgeDecoder(scale=2.0, bias=-1.0)
    z = torch.tensor([[3.0, 0.0], [1.0, 1.0], [0.0, -2.0]])
    logits = decoder.edge_logits(z, torch.tensor([[0, 0, 1], [1, 2, 2]]))
    expected = 2.0 * torch.tensor([2**-0.5, 0.0, -(2**-0.5)]) - 1.0
    assert torch.allclose(logits, expected, atol=1e-6)
    assert torch.allclose(decoder(z)[[0, 0, 1], [1, 2, 2]], expected, atol=1e-6)


def test_encode_rejects_wrong_feature_shape():
    _, model = _three_datasets()
    x, edges, _ = _random_inputs(7, 10, seed=0)
    with pytest.raises(ValueError, match="expects features"):
        model.encode(0, x, edges)


# --- a short training run ------------------------------------------------------------------


def _planted_graph(genes, n_cells, modules, seed):
    """Genes in the same module share a latent expression program and are connected."""
    rng = np.random.default_rng(seed)
    n = len(genes)
    labels = np.zeros(n, dtype=int)
    for k, members in enumerate(modules, start=1):
        labels[[genes.index(g) for g in members]] = k
    programs = rng.standard_normal((len(modules) + 1, n_cells))
    x = programs[labels] + 0.5 * rng.standard_normal((n, n_cells))
    a = (labels[:, None] == labels[None, :]) & (labels[:, None] > 0)
    np.fill_diagonal(a, True)
    adjacency = sp.csr_matrix(a.astype(np.uint8))
    return SimpleNamespace(genes=genes, adjacency=adjacency, features=x.astype(np.float32))


def test_loss_decreases_over_thirty_adam_steps():
    torch.manual_seed(0)
    mod_a = [f"A{i}" for i in range(6)]
    mod_b = [f"B{i}" for i in range(6)]
    genes_1 = mod_a + mod_b + [f"X{i}" for i in range(8)]
    genes_2 = mod_a[:4] + mod_b + [f"Y{i}" for i in range(10)]
    graphs = [
        _planted_graph(genes_1, 15, [mod_a, mod_b, genes_1[12:16]], seed=1),
        _planted_graph(genes_2, 9, [mod_a[:4], mod_b, genes_2[10:15]], seed=2),
    ]
    config = ModelConfig(hidden=8, heads1=2, heads2=2, embedding_dim=8, contrastive_samples=6)
    specs = [
        DatasetSpec(f"d{i}", g.features.shape[1], len(g.genes), "scrna_x")
        for i, g in enumerate(graphs)
    ]
    model = MuSeGNNModule(specs, config)
    pairs = compute_all_pair_stats(graphs, seed=0)
    xs = [torch.from_numpy(g.features) for g in graphs]
    edges = [edge_index_from_adjacency(g.adjacency) for g in graphs]
    targets = [dense_target(g.adjacency) for g in graphs]
    opt = torch.optim.Adam(
        [
            {"params": list(model.encoder_parameters()), "lr": 1e-2},
            {"params": list(model.decoder_parameters()), "lr": 1e-2},
        ]
    )
    gen = torch.Generator().manual_seed(0)
    history = []
    for step in range(30):
        t = step % 2
        s = 1 - t
        z_t, z_s = model.encode(t, xs[t], edges[t]), model.encode(s, xs[s], edges[s])
        loss, parts = total_loss(
            model.decode(t, z_t), targets[t], z_t, z_s, pairs[(t, s)], config, gen
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append((loss.item(), parts["similarity"].item()))
    first = np.mean([h[0] for h in history[:4]])
    last = np.mean([h[0] for h in history[-4:]])
    assert last < first - 0.1, (first, last)
    assert history[-1][1] < history[0][1]  # common genes drawn together

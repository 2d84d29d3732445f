"""Graph construction end to end: simulated atlas, caching, interruption, CLI, real data."""

from __future__ import annotations

import time

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

import musegnn_core.graphs.build as build
from musegnn_core.cli import main
from musegnn_core.data.demo import fill_demo
from musegnn_core.data.simulate import module_of_gene, simulate_atlas
from musegnn_core.errors import ValidationError
from musegnn_core.workspace import Workspace
from tests.conftest import requires_shared_data

SMALL = build.GraphConfig(n_genes=300)


@pytest.fixture(scope="module")
def sim_ws(tmp_path_factory):
    ws = Workspace.open(tmp_path_factory.mktemp("sim") / "ws")
    fill_demo(ws, prefer_simulated=True)
    build.build_graphs(ws, config=SMALL)
    return ws


def test_graphs_have_the_expected_shape(sim_ws):
    for meta in sim_ws.datasets():
        graph = build.load_graph(sim_ws, meta.name)
        n = graph.n_genes
        assert 2 <= n <= 300
        assert graph.adjacency.shape == (n, n)
        assert (graph.adjacency != graph.adjacency.T).nnz == 0
        assert np.all(graph.adjacency.diagonal() == 1)  # the reference keeps self-loops
        assert graph.features.shape == (n, graph.info["n_cells"])
        assert graph.features.dtype == np.float32 and np.isfinite(graph.features).all()
        assert len(set(graph.genes)) == n
        assert graph.info["selection"]["method"] == (
            "sparkx" if meta.modality == "spatial" else "pearson_residuals"
        )


def test_mouse_genes_are_mapped_to_human_symbols(sim_ws):
    graph = build.load_graph(sim_ws, "sim_scrna_mouse_pancreas")
    mapped = [(n, o) for n, o in zip(graph.genes, graph.original_genes, strict=True) if n != o]
    assert len(mapped) > 0.9 * graph.n_genes
    assert all(n.isupper() or "-" in n for n, _ in mapped)
    assert all(o[0].isupper() and o[1:] != o[1:].upper() for _, o in mapped[:50])
    human = build.load_graph(sim_ws, "sim_scrna_human_pancreas")
    assert len(set(graph.genes) & set(human.genes)) > 100


def test_planted_modules_become_dense_subgraphs(sim_ws):
    modules = module_of_gene(simulate_atlas(seed=0))
    graph = build.load_graph(sim_ws, "sim_scrna_human_blood_a")
    labels = np.array([modules.get(g, "") for g in graph.genes])
    adjacency = graph.adjacency.toarray().astype(bool)
    np.fill_diagonal(adjacency, False)
    same = (labels[:, None] == labels[None, :]) & (labels[:, None] != "")
    np.fill_diagonal(same, False)
    background = (labels[:, None] == "") & (labels[None, :] == "")
    np.fill_diagonal(background, False)
    assert adjacency[same].mean() > 0.6
    assert adjacency[background].mean() < 0.1


def test_cache_reuse_and_rebuild_on_change(sim_ws):
    again = build.build_graphs(sim_ws, ["sim_scrna_human_blood_b"], SMALL)
    assert again[0].cached
    sparser = build.build_graphs(
        sim_ws, ["sim_scrna_human_blood_b"], build.GraphConfig(n_genes=300, pvalue=1e-4)
    )
    assert not sparser[0].cached and sparser[0].fingerprint != again[0].fingerprint
    assert sparser[0].n_edges < again[0].n_edges
    bh = build.build_graphs(
        sim_ws, ["sim_scrna_human_blood_b"], build.GraphConfig(n_genes=300, correction="bh")
    )
    assert bh[0].n_edges < again[0].n_edges
    stored = build.load_graph(sim_ws, "sim_scrna_human_blood_b", again[0].fingerprint)
    assert stored.info["versions"]["torch"] and stored.info["config"]["pvalue"] == 0.005


def test_interrupted_build_leaves_nothing_that_looks_valid(tmp_path, monkeypatch):
    ws = Workspace.open(tmp_path / "ws")
    fill_demo(ws, prefer_simulated=True)
    name = "sim_scatac_human_blood"
    real = build.atomic_write_json

    def crash(path, obj):
        if str(path).endswith("graph.json"):
            raise KeyboardInterrupt
        return real(path, obj)

    monkeypatch.setattr(build, "atomic_write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        build.build_graphs(ws, [name], SMALL)
    monkeypatch.undo()
    with pytest.raises(ValidationError, match="No graph built"):
        build.load_graph(ws, name)
    [summary] = build.build_graphs(ws, [name], SMALL)
    assert not summary.cached
    assert build.load_graph(ws, name).n_genes == summary.n_genes


def test_shared_selection_increases_overlap(sim_ws):
    names = ["sim_scrna_human_blood_a", "sim_scrna_mouse_pancreas", "sim_spatial_human_breast"]
    overlap = {}
    for selection in ("per-dataset", "shared"):
        config = build.GraphConfig(n_genes=200, selection=selection)
        graphs = [
            build.load_graph(sim_ws, s.dataset, s.fingerprint)
            for s in build.build_graphs(sim_ws, names, config)
        ]
        overlap[selection] = sum(
            len(set(a.genes) & set(b.genes)) for i, a in enumerate(graphs) for b in graphs[i + 1 :]
        )
        assert all(g.n_genes == 200 for g in graphs)
    assert overlap["shared"] > 1.2 * overlap["per-dataset"]


def test_seconds_of_a_graph_include_its_ranking(sim_ws, monkeypatch):
    """Where every dataset is ranked before any graph is built (shared selection), each
    summary counts its dataset's ranking too, so the seconds printed per graph add up to
    the call's. A call that builds nothing ranks nothing."""
    names = ["sim_scrna_human_blood_a", "sim_scrna_mouse_pancreas"]
    config = build.GraphConfig(n_genes=60, selection="shared", shared_pool=3)
    slow = 0.5
    prepare = build.prepare_task

    def slow_prepare(*args):
        time.sleep(slow)
        return prepare(*args)

    monkeypatch.setattr(build, "prepare_task", slow_prepare)
    built = build.build_graphs(sim_ws, names, config)
    assert all(not s.cached and s.seconds >= slow for s in built)
    assert all(s.peak_memory_bytes > 0 for s in built)
    assert all(s.cached and s.seconds < slow for s in build.build_graphs(sim_ws, names, config))
    again = build.build_graphs(sim_ws, names, config, force=True)
    assert all(not s.cached and s.seconds >= slow for s in again)


def test_bad_parameters_are_refused():
    for kwargs in (
        {"n_genes": 1},
        {"pvalue": 0},
        {"pvalue": 1.5},
        {"correction": "bonf"},
        {"selection": "magic"},
        {"shared_pool": 0},
    ):
        with pytest.raises(ValidationError):
            build.GraphConfig(**kwargs)


def test_cli_build_graphs(sim_ws, capsys):
    assert (
        main(
            [
                "build-graphs",
                "-w",
                str(sim_ws.root),
                "--n-genes",
                "300",
                "--datasets",
                "sim_scrna_human_blood_a,sim_spatial_human_breast",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all("genes," in ln and "density" in ln for ln in lines)
    assert all("(cached)" in ln for ln in lines)
    assert main(["build-graphs", "-w", str(sim_ws.root), "--datasets", "nope"]) == 2
    assert main(["build-graphs", "-w", str(sim_ws.root), "--pvalue", "2"]) == 2


@requires_shared_data
def test_real_pancreas_graphs_share_genes_across_species(tmp_path, shared_data):
    """The reference's per-dataset HVGs leave the two pancreas graphs only ~90 genes in
    common (the mouse file ships 2000 preselected genes); shared selection lifts that to
    hundreds while keeping each graph's genes among its own top 3000."""
    from musegnn_core.data.importer import import_datasets

    ws = Workspace.open(tmp_path / "ws")
    atlas = shared_data / "atlas"
    import_datasets(
        ws,
        [
            atlas / "scrna_human_pancreas_pdac_indrop.h5ad",
            atlas / "scrna_mouse_pancreas_e15_10x.h5ad",
        ],
    )
    shared_counts = {}
    for selection in ("per-dataset", "shared"):
        config = build.GraphConfig(selection=selection)
        human_s, mouse_s = build.build_graphs(ws, config=config)
        assert (human_s.n_genes, mouse_s.n_genes) == (1000, 1000)
        human = build.load_graph(ws, human_s.dataset, human_s.fingerprint)
        mouse = build.load_graph(ws, mouse_s.dataset, mouse_s.fingerprint)
        assert mouse.info["orthologs"]["mapped"] > 880
        shared_counts[selection] = len(set(human.genes) & set(mouse.genes))
    print(f"human/mouse pancreas graphs share {shared_counts} genes")
    assert shared_counts["per-dataset"] >= 60
    assert shared_counts["shared"] >= 200


def test_cap_neighbours_keeps_strongest_edges():
    import scipy.sparse as sp

    adjacency = sp.csr_matrix(np.ones((4, 4), dtype=np.uint8))
    stat = np.array([[9, 5, 1, 2], [5, 9, 3, 0.5], [1, 3, 9, 4], [2, 0.5, 4, 9]], dtype=float)
    capped = build.cap_neighbours(adjacency, stat, 1).toarray()
    # gene 0 keeps 1 (|T|=5), 1 keeps 0, 2 keeps 3 (4), 3 keeps 2; union is symmetric
    expected = np.eye(4, dtype=np.uint8)
    expected[0, 1] = expected[1, 0] = expected[2, 3] = expected[3, 2] = 1
    np.testing.assert_array_equal(capped, expected)
    assert (build.cap_neighbours(adjacency, stat, 3).toarray() == 1).all()


def test_pinned_genes_join_every_graph_that_expresses_them(sim_ws):
    """``include_genes``: a gene outside the top genes joins where it is detected."""
    small = build.GraphConfig(n_genes=60)
    data = sim_ws.load_dataset("sim_scrna_human_blood_a")
    meta = sim_ws.dataset("sim_scrna_human_blood_a")
    prepared = build.prepare_dataset(data, meta, small, None)
    chosen = build.choose_genes(prepared.ranked, prepared.ranked_nodes, small, None)
    outside = [g for g in prepared.ranked[200:] if g not in chosen]
    counts = prepared.filtered[:, outside].X
    detected = np.asarray((counts != 0).sum(axis=0)).ravel()
    expressed = outside[int(np.argmax(detected))]
    silent = data.var_names[np.asarray((data.X != 0).sum(axis=0)).ravel() == 0]
    pins = (expressed.lower(), chosen[0], "NOT_A_GENE", *list(silent[:1]))
    genes, report = build.pin_genes(chosen, prepared, pins)
    assert genes[: len(chosen)] == chosen and genes[len(chosen) :] == [expressed]
    assert report["pinned_added"] == [expressed]  # matched case-insensitively
    assert report["pinned_already_chosen"] == [chosen[0]]
    assert "NOT_A_GENE" in report["pinned_not_in_dataset"]
    if len(silent):  # removed by QC or never detected: not expressed, not added
        assert silent[0] in report["pinned_not_in_dataset"] + report["pinned_not_expressed"]
    graph = build.build_graph(
        prepared, meta, build.GraphConfig(n_genes=60, include_genes=(expressed,)), None
    )
    assert expressed in graph.genes and graph.n_genes == 61
    assert graph.info["selection"]["pinned_added"] == [expressed]


def test_complete_genes_on_a_hand_example():
    """A run gene joins when this dataset ranks it and 3 or more cells detect it, matched by
    its human name, after the chosen genes and in the order of the ranking."""
    counts = np.array(
        [
            # g1 g2 Cd74 g4 g5
            [1, 1, 2, 0, 1],
            [1, 0, 1, 0, 1],
            [0, 1, 1, 1, 1],
            [1, 1, 0, 1, 0],
            [0, 0, 0, 0, 0],
        ],
        dtype=np.float32,
    )
    filtered = ad.AnnData(sp.csr_matrix(counts))
    filtered.var_names = ["g1", "g2", "Cd74", "g4", "g5"]
    prepared = build.PreparedDataset(
        meta=None,
        filtered=filtered,
        report=None,
        ranked=["g5", "g1", "g4", "Cd74", "g2"],
        ranked_nodes=["G5", "G1", "G4", "CD74", "G2"],
        selection={},
        timings={},
    )
    run_genes = {"G1", "CD74", "G4", "G5", "NOT_HERE"}
    genes, report = build.complete_genes(["g1"], prepared, run_genes)
    # g4 is detected by 2 cells only; g2 is no run gene; g1 is chosen already.
    assert genes == ["g1", "g5", "Cd74"]
    assert report == {"completed_added": 2}
    assert build.complete_genes(["g1"], prepared, set()) == (["g1"], {"completed_added": 0})


def test_completed_graphs_hold_every_run_gene_their_dataset_detects(sim_ws):
    """``complete_graphs``: each graph keeps its own genes first and gains every gene chosen
    for another graph of the run that its dataset detects; the cache keeps both versions."""
    names = ["sim_scrna_human_blood_a", "sim_scrna_mouse_pancreas", "sim_spatial_human_breast"]
    plain = build.GraphConfig(n_genes=80)
    complete = build.GraphConfig(n_genes=80, complete_graphs=True)
    own = {
        s.dataset: build.load_graph(sim_ws, s.dataset, s.fingerprint)
        for s in build.build_graphs(sim_ws, names, plain)
    }
    summaries = build.build_graphs(sim_ws, names, complete)
    assert not any(s.cached for s in summaries)
    full = {s.dataset: build.load_graph(sim_ws, s.dataset, s.fingerprint) for s in summaries}
    run_genes = set().union(*(set(g.genes) for g in own.values()))
    table = build.ortholog_table_path(sim_ws)
    grown = 0
    for name in names:
        graph = full[name]
        assert list(graph.genes[:80]) == list(own[name].genes)
        prepared = build.prepare_dataset(
            sim_ws.load_dataset(name), sim_ws.dataset(name), complete, table
        )
        detected = build.detected_cell_counts(prepared.filtered, prepared.ranked)
        expected = {
            node
            for node, n in zip(prepared.ranked_nodes, detected, strict=True)
            if node in run_genes and n >= build.MIN_CELLS_FOR_PINNED_GENE
        } | set(own[name].genes)
        assert set(graph.genes) == expected
        assert graph.info["selection"]["completed_added"] == graph.n_genes - 80
        grown += graph.n_genes - 80
    assert grown > 0
    assert [s.cached for s in build.build_graphs(sim_ws, names, complete)] == [True] * 3

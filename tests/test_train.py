"""Training on the simulated atlas: loss goes down, runs resume exactly, outputs are complete."""

from __future__ import annotations

import os
import subprocess
import sys

import anndata as ad
import numpy as np
import pytest
import torch

from musegnn_core.data.demo import fill_demo
from musegnn_core.errors import ValidationError, WorkspaceError
from musegnn_core.graphs.build import GraphConfig
from musegnn_core.runs import get_run, list_runs
from musegnn_core.storage import file_lock
from musegnn_core.train import make_config, train
from musegnn_core.workspace import Workspace

GRAPHS = GraphConfig(n_genes=150, selection="shared", edges_per_gene=30)


def small_config(**overrides):
    return make_config("quick", graph=GRAPHS, **({"epochs": 6} | overrides))


@pytest.fixture(scope="module")
def sim_ws(tmp_path_factory):
    ws = Workspace.open(tmp_path_factory.mktemp("train") / "ws")
    fill_demo(ws, prefer_simulated=True)
    return ws


@pytest.fixture(scope="module")
def finished_run(sim_ws):
    events = []
    run = train(sim_ws, small_config(epochs=30), run_name="full", callback=events.append)
    return run, events


def test_loss_decreases_and_progress_is_reported(finished_run):
    run, events = finished_run
    losses = run.losses()
    assert list(losses["epoch"]) == list(range(1, 31))
    assert losses["total"].iloc[-5:].mean() < 0.8 * losses["total"].iloc[:3].mean()
    assert losses["reconstruction"].iloc[-1] < losses["reconstruction"].iloc[0]
    training = [e for e in events if e.phase == "training"]
    assert [e.epoch for e in training] == list(range(1, 31))
    assert set(training[-1].losses) == {"total", "reconstruction", "similarity", "contrastive"}
    assert training[-1].seconds_per_epoch > 0 and training[-1].eta_seconds == 0
    assert events[-1].phase == "done"


def test_run_folder_is_complete(finished_run, sim_ws):
    run, _ = finished_run
    config = run.config()
    assert config["train"]["epochs"] == 30 and config["device"] == "cpu"
    assert len(config["graph_fingerprints"]) == len(config["datasets"]) == 6
    assert config["versions"]["torch"].startswith("2.13")
    assert run.status()["state"] == "completed"
    emb = ad.read_h5ad(run.embeddings_path)
    for column in ("gene", "dataset", "tissue", "modality", "species", "leiden"):
        assert column in emb.obs
    assert emb.X.shape[1] == small_config().model.embedding_dim
    assert emb.obsm["X_umap"].shape == (emb.n_obs, 2)
    assert set(emb.obs["dataset"]) == set(config["datasets"])
    state = torch.load(run.checkpoint_path, weights_only=True)
    assert state["epoch"] == 30


def test_resume_after_stop_equals_uninterrupted(sim_ws):
    straight = train(sim_ws, small_config(), run_name="straight")

    def stop_at_3(event):
        if event.phase == "training" and event.epoch == 3:
            get_run(sim_ws, "halves").request_stop()

    stopped = train(sim_ws, small_config(), run_name="halves", callback=stop_at_3)
    assert stopped.status()["state"] == "stopped" and stopped.status()["epoch"] == 3
    resumed = train(sim_ws, small_config(), run_name="halves", resume=True)
    assert resumed.status()["state"] == "completed"
    a = torch.load(straight.checkpoint_path, weights_only=True)
    b = torch.load(resumed.checkpoint_path, weights_only=True)
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert a["history"][-1]["total"] == b["history"][-1]["total"]
    np.testing.assert_array_equal(
        ad.read_h5ad(straight.embeddings_path).X, ad.read_h5ad(resumed.embeddings_path).X
    )


def test_one_training_per_workspace(sim_ws):
    with (
        file_lock(sim_ws.root / "training.lock"),
        pytest.raises(WorkspaceError, match="already running"),
    ):
        train(sim_ws, small_config(), run_name="second")
    assert "second" not in [r.name for r in list_runs(sim_ws)]


def test_bad_requests(sim_ws, finished_run):
    with pytest.raises(ValidationError, match="epochs"):
        make_config("quick", epochs=0)
    with pytest.raises(ValidationError, match="preset"):
        make_config("fast")
    with pytest.raises(WorkspaceError, match="already exists"):
        train(sim_ws, small_config(), run_name="full")
    with pytest.raises(WorkspaceError, match="No run named"):
        train(sim_ws, small_config(), run_name="never", resume=True)


def test_killed_training_shows_as_stopped_and_resumes(sim_ws):
    """kill -9 of a real training process: the run reads as stopped and resumes."""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    code = (
        "import sys; from musegnn_core.workspace import Workspace;"
        "from musegnn_core.train import make_config, train;"
        "from musegnn_core.graphs.build import GraphConfig;"
        "import os, signal;"
        "cfg = make_config('quick', epochs=50, checkpoint_every=2,"
        " graph=GraphConfig(n_genes=150, selection='shared', edges_per_gene=30));"
        "cb = lambda e: os.kill(os.getpid(), signal.SIGKILL) if e.epoch == 5 else None;"
        f"train(Workspace.open({str(sim_ws.root)!r}), cfg, run_name='killed', callback=cb)"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, timeout=300)
    assert done.returncode == -9
    run = get_run(sim_ws, "killed")
    status = run.status()
    assert status["state"] == "stopped" and "killed or crashed" in status["note"]
    assert torch.load(run.checkpoint_path, weights_only=True)["epoch"] == 4
    resumed = train(
        sim_ws, make_config("quick", epochs=50, graph=GRAPHS), run_name="killed", resume=True
    )
    assert resumed.status()["state"] == "completed"
    assert list(resumed.losses()["epoch"]) == list(range(1, 51))


def test_embedding_recovers_planted_modules_better_than_baselines(finished_run, sim_ws):
    """Adjusted Rand index of Leiden clusters against the simulator's planted modules."""
    from sklearn.metrics import adjusted_rand_score

    from musegnn_core.analysis.baselines import pca_embedding, random_embedding
    from musegnn_core.analysis.clusters import cluster_embedding
    from musegnn_core.data.simulate import module_of_gene, simulate_atlas
    from musegnn_core.graphs.build import load_graph

    run, _ = finished_run
    config = run.config()
    graphs = {
        d: load_graph(sim_ws, d, f)
        for d, f in zip(config["datasets"], config["graph_fingerprints"], strict=True)
    }
    modules = module_of_gene(simulate_atlas(seed=0))

    def ari(embedding):
        if "leiden" not in embedding.obs:
            cluster_embedding(embedding, resolution=1.0, seed=0)
        truth = embedding.obs["gene"].map(modules)
        keep = truth.notna().to_numpy()
        return adjusted_rand_score(truth[keep], embedding.obs["leiden"][keep])

    scores = {
        "musegnn": ari(ad.read_h5ad(run.embeddings_path)),
        "pca": ari(pca_embedding(graphs)),
        "random": ari(random_embedding(graphs)),
    }
    print(f"ARI of clusters vs planted modules: {scores}")
    assert scores["musegnn"] > scores["pca"] + 0.05
    assert scores["musegnn"] > scores["random"] + 0.2


def test_train_cli(sim_ws, capsys):
    from musegnn_core.cli import main

    assert (
        main(
            [
                "train",
                "-w",
                str(sim_ws.root),
                "--epochs",
                "2",
                "--run-name",
                "cli",
                "--datasets",
                "sim_scrna_human_blood_a,sim_scrna_mouse_pancreas",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert "run cli: completed at epoch 2 of 2" in captured.out
    assert "cli: epoch 2/2: total" in captured.err  # plain lines when stderr is not a terminal
    assert main(["train", "-w", str(sim_ws.root), "--run-name", "ghost", "--resume"]) == 2
    assert main(["train", "-w", str(sim_ws.root), "--epochs", "0"]) == 2
    assert main(["train", "-w", str(sim_ws.root), "--datasets", "nope"]) == 2

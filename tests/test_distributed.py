"""Training under torchrun (gloo on CPU, one thread per rank): steps, averaging, resume.

The torchrun tests start real processes on the simulated atlas (150 genes, three datasets,
so that rank 1 sits out the last round of every epoch).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from musegnn_core.distributed import Distributed, under_torchrun
from musegnn_core.runs import get_run
from musegnn_core.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
DATASETS = ["sim_scrna_human_blood_a", "sim_scrna_human_blood_b", "sim_scrna_human_pancreas"]
N_GENES = 150
#: Weights of the 2-rank run against the one-process reference: float32 sums in another
#: order (gloo's all-reduce against autograd's accumulation), through a few Adam steps.
WEIGHT_ATOL = 1e-5
WEIGHT_RTOL = 1e-4

needs_torchrun = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")


# ------------------------------------------------------------------ the step plan
@pytest.mark.parametrize(("n_steps", "world"), [(3, 2), (8, 3), (1, 2), (5, 5), (7, 1)])
def test_ranks_share_every_step_once_and_meet_in_every_round(n_steps, world):
    ranks = [Distributed(rank=r, world_size=world) for r in range(world)]
    assert sorted(t for d in ranks for t in d.own_steps(n_steps)) == list(range(n_steps))
    rounds = -(-n_steps // world)
    for t in range(n_steps):
        in_round = [u for d in ranks for u in d.own_steps(n_steps) if u // world == t // world]
        assert ranks[0].round_size(t, n_steps) == len(in_round)
    # A rank without a step in a round still joins its all-reduce (finish_epoch).
    assert all(len(d.own_steps(n_steps)) <= rounds for d in ranks)
    assert sum(rounds - len(d.own_steps(n_steps)) for d in ranks) == rounds * world - n_steps


def test_step_seeds_come_from_the_shared_generator():
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    assert Distributed(0, 2).step_seeds(a, 4) == Distributed(1, 2).step_seeds(b, 4)


def test_distributed_outside_torchrun_is_a_clear_error(tmp_path, capsys):
    from musegnn_core.cli import main

    assert not under_torchrun({"RANK": "0"})
    Workspace.open(tmp_path / "ws")
    env_before = {k: os.environ.pop(k) for k in ("RANK", "WORLD_SIZE") if k in os.environ}
    try:
        code = main(["train", "--workspace", str(tmp_path / "ws"), "--distributed"])
    finally:
        os.environ.update(env_before)
    assert code == 2
    assert "error: --distributed runs under torchrun" in capsys.readouterr().err


# ------------------------------------------------------------------- real ranks
@pytest.fixture(scope="module")
def sim_template(tmp_path_factory):
    """The simulated atlas with the three datasets' graphs built and cached."""
    from musegnn_core.data.demo import fill_demo
    from musegnn_core.graphs.build import build_graphs
    from musegnn_core.settings import make_config

    ws = Workspace.open(tmp_path_factory.mktemp("dist") / "ws")
    fill_demo(ws, prefer_simulated=True)
    build_graphs(ws, DATASETS, make_config("quick", n_genes=N_GENES).graph)
    return ws.root


@pytest.fixture
def sim_workspace(sim_template, tmp_path):
    import shutil

    shutil.copytree(sim_template, tmp_path / "ws")
    return tmp_path / "ws"


def torchrun(nproc: int, *args: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MUSEGNN_THREADS": "1"}
    command = [str(TORCHRUN), "--standalone", "--nproc-per-node", str(nproc)]
    command += ["-m", "musegnn_core", "train", *args]
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT
    )


def reference_epoch(world: int):
    """One epoch in one process with the steps and averaging of ``world`` ranks: the same
    partners and step seeds, each round's gradients accumulated by autograd and divided
    by the round's size, one Adam step per round."""
    from musegnn_core.model.losses import combine_losses
    from musegnn_core.train import LOSS_TERMS, draw_partner, reconstruction_term

    plan = Distributed(rank=0, world_size=world)

    def epoch(state, config) -> dict:
        module, data = state.module, state.data
        n = len(data.graphs)
        partners = [draw_partner(state.rng, t, n, state.partner_overlap) for t in range(n)]
        seeds = plan.step_seeds(state.rng, n)
        sums = np.zeros(len(LOSS_TERMS))
        for start in range(0, n, world):
            steps = range(start, min(n, start + world))
            state.optimizer.zero_grad(set_to_none=True)
            for t in steps:
                state.generator.manual_seed(seeds[t])
                s = partners[t]
                z_t = module.encode(t, data.features[t], data.attention[t])
                z_s = module.encode(s, data.features[s], data.attention[s])
                rec = reconstruction_term(module, t, z_t, state, config)
                if getattr(config, "reconstruct_partner", False):
                    rec = 0.5 * (rec + reconstruction_term(module, s, z_s, state, config))
                loss, parts = combine_losses(
                    rec, z_t, z_s, state.pairs[(t, s)], config.model, state.generator
                )
                loss.backward()  # accumulates over the round
                sums += [
                    loss.item(),
                    *(parts[k].item() for k in ("reconstruction", "similarity", "contrastive")),
                ]
            for p in module.parameters():
                if p.grad is not None:
                    p.grad /= len(steps)
            state.optimizer.step()
        return dict(zip(LOSS_TERMS, (sums / n).tolist(), strict=True))

    return epoch


@needs_torchrun
def test_two_gloo_ranks_match_one_process_with_the_same_steps_and_averaging(
    sim_workspace, tmp_path, monkeypatch, one_torch_thread
):
    from musegnn_core import train as train_module
    from musegnn_core.settings import TrainConfig

    log = tmp_path / "torchrun.log"
    args = ["--workspace", str(sim_workspace), "--preset", "quick", "--epochs", "5"]
    args += ["--n-genes", str(N_GENES), "--datasets", ",".join(DATASETS)]
    process = torchrun(2, *args, "--run-name", "dist", "--distributed", log=log)
    assert process.wait(timeout=600) == 0, log.read_text()[-3000:]

    workspace = Workspace(sim_workspace)
    run = get_run(workspace, "dist")
    assert run.status()["state"] == "completed"
    # Rank 0 alone wrote: one process in the progress file.
    pids = {json.loads(line).get("pid") for line in run.progress_path.read_text().splitlines()}
    assert len(pids - {None}) == 1

    config = TrainConfig.from_dict(run.config()["train"])
    monkeypatch.setattr(train_module, "train_epoch", reference_epoch(world=2))
    reference = train_module.train(workspace, config, datasets=DATASETS, run_name="reference")

    ranks_weights = torch.load(run.checkpoint_path, weights_only=True)["model"]
    one_weights = torch.load(reference.checkpoint_path, weights_only=True)["model"]
    assert ranks_weights.keys() == one_weights.keys()
    for name, value in ranks_weights.items():
        torch.testing.assert_close(
            value, one_weights[name], atol=WEIGHT_ATOL, rtol=WEIGHT_RTOL, msg=name
        )
    # The comparison has teeth: training moved the weights well beyond the tolerance.
    losses_ranks, losses_one = run.losses(), reference.losses()
    assert len(losses_ranks) == 5
    np.testing.assert_allclose(
        losses_ranks["total"].to_numpy(), losses_one["total"].to_numpy(), rtol=1e-4, atol=1e-5
    )
    assert losses_ranks["total"].iloc[-1] < losses_ranks["total"].iloc[0] - 10 * WEIGHT_ATOL


def child_with_rank(parent: int, rank: int) -> int | None:
    """The pid of the torchrun worker of ``rank`` among ``parent``'s children."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@needs_torchrun
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_a_killed_rank_leaves_a_checkpoint_the_run_resumes_from(sim_workspace, tmp_path):
    from musegnn_core.settings import make_config

    workspace = Workspace(sim_workspace)
    config = make_config("quick", epochs=2000, checkpoint_every=2, n_genes=N_GENES)
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"train": config.to_dict(), "datasets": DATASETS}))
    base = ["--workspace", str(sim_workspace), "--run-name", "dist"]

    first = torchrun(2, *base, "--config", str(request), "--distributed", log=tmp_path / "a.log")
    try:
        run_dir = sim_workspace / "runs" / "dist"
        wait_for(
            lambda: (
                get_run(workspace, "dist").raw_status().get("checkpoint_epoch", 0) >= 4
                if (run_dir / "status.json").exists()
                else False
            ),
            300,
            "a checkpoint",
        )
        rank1 = child_with_rank(first.pid, 1)
        assert rank1 is not None
        os.kill(rank1, signal.SIGKILL)
        assert first.wait(timeout=120) != 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    run = get_run(workspace, "dist")
    assert run.status()["state"] != "running"
    saved = torch.load(run.checkpoint_path, weights_only=True)["epoch"]
    assert saved >= 4 and saved % 2 == 0

    # Resume with another number of ranks (one), then stop it through the STOP file.
    second = torchrun(1, *base, "--resume", "--distributed", log=tmp_path / "b.log")
    try:
        wait_for(
            lambda: get_run(workspace, "dist").raw_status().get("epoch", 0) >= saved + 3,
            300,
            "the resumed epochs",
        )
        run.request_stop()
        second.wait(timeout=120)
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
    status = run.status()
    assert status["state"] == "stopped", (tmp_path / "b.log").read_text()[-3000:]
    events = [json.loads(line) for line in run.progress_path.read_text().splitlines()]
    resumed = [e for e in events if e.get("attempt") == "resume"]
    assert len(resumed) == 1
    after = events[events.index(resumed[0]) :]
    assert next(e["epoch"] for e in after if e["phase"] == "training") == saved + 1
    # losses.csv: every epoch once, in order, across the kill.
    epochs = run.losses()["epoch"].tolist()
    assert epochs == list(range(1, len(epochs) + 1)) and len(epochs) >= saved + 3

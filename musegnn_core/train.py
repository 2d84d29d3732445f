"""Training MuSe-GNN: presets, the loop, checkpoints, resume, and the run folder.

The torch module (:mod:`musegnn_core.model`) holds the math; this module is the
wrapper around it (as scvi-tools separates a module from its model): data on the
device, optimisers, seeded randomness, progress, checkpoints and outputs.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from . import software_versions
from .analysis.annotate import annotate_after_training
from .device import resolve_device
from .distributed import Distributed, FollowerRun
from .errors import MuseGNNError, ValidationError, WorkspaceError
from .graphs.build import GeneGraph, build_graphs, load_graph
from .graphs.overlap import check_datasets_share_genes
from .model.attention import AttentionGraph
from .model.losses import (
    combine_losses,
    reconstruction_loss,
    sample_non_edges,
    sampled_reconstruction_loss,
)
from .model.module import (
    DatasetSpec,
    MuSeGNNModule,
    dense_target,
    edge_index_from_adjacency,
    undirected_edges,
)
from .model.pairs import (
    compute_all_pair_stats,
    gene_vocabulary,
    partner_overlap,
    resample_neighbours,
)
from .progress import ProgressRecorder
from .runs import Run, check_run_name, get_run, list_runs, new_run_name, run_folder
from .settings import (  # noqa: F401 (GraphConfig, ModelConfig, PRESETS: re-exported)
    PRESETS,
    GraphConfig,
    ModelConfig,
    TrainConfig,
    learning_rate_factor,
    make_config,
    sharing_group,
)
from .storage import atomic_path, atomic_write_json, atomic_write_text, file_lock
from .workspace import Workspace, now_iso

LOSS_TERMS = ("total", "reconstruction", "similarity", "contrastive")


@dataclass
class ProgressEvent:
    """What a progress callback receives after every epoch (and at phase changes)."""

    run: str
    phase: str  # "graphs", "training", "embedding", "done", "stopped"
    epoch: int = 0
    epochs: int = 0
    losses: dict = field(default_factory=dict)
    seconds_per_epoch: float = 0.0
    eta_seconds: float = 0.0
    message: str = ""


Callback = Callable[[ProgressEvent], None]


# ------------------------------------------------------------------ data on device
@dataclass
class DeviceGraphs:
    """All graphs as tensors on the training device, moved there once."""

    graphs: list[GeneGraph]
    features: list[torch.Tensor]
    #: Each graph's directed edges, laid out for the attention layers.
    attention: list[AttentionGraph]
    #: Dense 0/1 targets (``reconstruction="dense"``), else None.
    targets: list[torch.Tensor | None]
    #: Each undirected edge once, no self-loops, 2 x E (``reconstruction="sampled"``).
    edges: list[torch.Tensor | None]
    #: Sorted keys ``u * n + v`` of all directed edges, to refuse sampled non-edges.
    edge_keys: list[torch.Tensor | None]


def to_device(
    graphs: list[GeneGraph], device: torch.device, reconstruction: str = "dense"
) -> DeviceGraphs:
    """Features, edges and reconstruction targets of every graph on ``device``."""
    edge_index = [edge_index_from_adjacency(g.adjacency).to(device) for g in graphs]
    dense = reconstruction == "dense"
    return DeviceGraphs(
        graphs=graphs,
        features=[torch.from_numpy(g.features).to(device) for g in graphs],
        attention=[
            AttentionGraph.from_edge_index(e, g.n_genes)
            for g, e in zip(graphs, edge_index, strict=True)
        ],
        targets=[dense_target(g.adjacency).to(device) if dense else None for g in graphs],
        edges=[None if dense else undirected_edges(g.adjacency).to(device) for g in graphs],
        edge_keys=[
            None if dense else torch.sort(e[0] * g.n_genes + e[1]).values
            for g, e in zip(graphs, edge_index, strict=True)
        ],
    )


def reconstruction_term(
    module: MuSeGNNModule, t: int, z_t: torch.Tensor, state: TrainingState, config: TrainConfig
) -> torch.Tensor:
    """The graph reconstruction loss of dataset ``t``, in float32 (BCE sums are
    precision-sensitive); the dense decoder itself may run under autocast."""
    data = state.data
    if config.model.reconstruction == "dense":
        return reconstruction_loss(module.decode(t, z_t).float(), data.targets[t])
    edges = data.edges[t]
    count = max(1, round(edges.shape[1] * config.model.negatives_per_edge))
    negatives = sample_non_edges(data.edge_keys[t], data.graphs[t].n_genes, count, state.generator)
    with torch.autocast(z_t.device.type, enabled=False):
        z = z_t.float()
        return sampled_reconstruction_loss(
            module.decode_pairs(t, z, edges), module.decode_pairs(t, z, negatives)
        )


@dataclass
class TrainingState:
    """What a run carries from epoch to epoch, and what its checkpoint restores."""

    module: MuSeGNNModule
    optimizer: torch.optim.Optimizer
    data: DeviceGraphs
    pairs: dict
    rng: np.random.Generator
    generator: torch.Generator
    device: torch.device
    history: list[dict] = field(default_factory=list)
    #: This rank's place among several training processes (torchrun), else None.
    distributed: Distributed | None = None
    #: How often each dataset is drawn as a partner (``partner_draw="overlap"``), else
    #: None for a uniform draw.
    partner_overlap: np.ndarray | None = None

    @property
    def writes_outputs(self) -> bool:
        """Rank 0 alone (or the one process) writes checkpoints and the run folder."""
        return self.distributed is None or self.distributed.lead


def dataset_specs(graphs: list[GeneGraph], share: str) -> list[DatasetSpec]:
    vocabulary = gene_vocabulary([g.genes for g in graphs])
    return [
        DatasetSpec(
            name=g.dataset,
            n_cells=int(g.features.shape[1]),
            n_genes=g.n_genes,
            group=sharing_group(
                g.info.get("tissue", "unknown"), g.info.get("modality", "scrna"), share
            ),
            gene_ids=np.array([vocabulary[gene] for gene in g.genes], dtype=np.int64),
        )
        for g in graphs
    ]


def check_shared_genes(graphs: list[GeneGraph]) -> None:
    """MuSe-GNN ties datasets through shared genes; with none at all it cannot integrate."""
    if len(graphs) < 2:
        return
    gene_sets = [set(g.genes) for g in graphs]
    if not any(
        gene_sets[i] & gene_sets[j] for i in range(len(graphs)) for j in range(i + 1, len(graphs))
    ):
        raise ValidationError(
            "The chosen datasets share no genes, so their embeddings cannot be tied together. "
            "Check species and gene naming (mouse genes need an ortholog table), or use "
            "shared gene selection."
        )


# ------------------------------------------------------------------- stop handling
class StopFlag:
    """Set by SIGINT/SIGTERM or a STOP file in the run folder; checked between epochs."""

    def __init__(self, run: Run):
        self.run = run
        self.signalled = threading.Event()

    def __call__(self) -> bool:
        return self.signalled.is_set() or self.run.stop_requested()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            self.signalled.set()

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)


# --------------------------------------------------------------------- checkpoints
def save_checkpoint(run: Run, state: TrainingState, epoch: int) -> None:
    """Everything needed to continue exactly: weights, optimiser and every random state."""
    checkpoint = {
        "epoch": epoch,
        "model": state.module.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "numpy_rng": state.rng.bit_generator.state,
        "torch_generator": state.generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": state.history,
    }
    with atomic_path(run.checkpoint_path) as tmp:
        torch.save(checkpoint, tmp)


def load_checkpoint(run: Run, device: torch.device) -> dict:
    """Load with ``weights_only=True``: a checkpoint can never run code when opened."""
    try:
        return torch.load(run.checkpoint_path, map_location=device, weights_only=True)
    except FileNotFoundError as exc:
        raise WorkspaceError(f"Run {run.name} has no checkpoint to resume from.") from exc
    except Exception as exc:
        raise WorkspaceError(f"The checkpoint of run {run.name} is unreadable ({exc}).") from exc


def write_losses(run: Run, history: list[dict]) -> None:
    lines = [",".join(("epoch", *LOSS_TERMS, "seconds"))]
    lines += [",".join(str(row[k]) for k in ("epoch", *LOSS_TERMS, "seconds")) for row in history]
    atomic_write_text(run.losses_path, "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- loop
def make_optimizer(module: MuSeGNNModule, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam with the paper's two learning rates (encoders 1e-4, decoders 1e-3)."""
    groups = [{"params": list(module.encoder_parameters()), "lr": config.lr_encoder}]
    decoders = list(module.decoder_parameters())
    if decoders:
        groups.append({"params": decoders, "lr": config.lr_decoder})
    return torch.optim.Adam(groups)


def set_learning_rates(optimizer: torch.optim.Optimizer, config: TrainConfig, epoch: int) -> None:
    """Each parameter group's rate for ``epoch`` from its base rate and the schedule."""
    factor = learning_rate_factor(config.lr_schedule, epoch, config.epochs)
    for group in optimizer.param_groups:
        group.setdefault("base_lr", group["lr"])
        group["lr"] = group["base_lr"] * factor


def draw_partner(
    rng: np.random.Generator, t: int, n: int, overlap: np.ndarray | None = None
) -> int:
    """The dataset paired with dataset ``t`` in a step: any other, uniformly, or with
    ``overlap`` (:func:`~musegnn_core.model.pairs.partner_overlap`) in proportion to row
    ``t`` (uniformly when ``t`` overlaps no other dataset)."""
    if overlap is not None:
        row = np.where(np.arange(n) == t, 0.0, overlap[t])
        if row.sum() > 0:
            return int(rng.choice(n, p=row / row.sum()))
    return int(rng.choice([i for i in range(n) if i != t]))


def train_epoch(state: TrainingState, config: TrainConfig) -> dict:
    """One optimiser step per dataset, each paired with a random other dataset.

    Under torchrun (``state.distributed``) each rank runs its share of the steps, and the
    steps of one round are one optimiser step with their gradients averaged
    (:mod:`musegnn_core.distributed`).
    """
    module, data, device = state.module, state.data, state.device
    n = len(data.graphs)
    sums = torch.zeros(len(LOSS_TERMS), device=device)
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device.type == "cuda" and config.mixed_precision
        else contextlib.nullcontext()
    )
    ranks = state.distributed
    # Drawn for all steps on every rank, so the ranks' generators stay the same.
    partners = (
        [draw_partner(state.rng, t, n, state.partner_overlap) for t in range(n)] if n > 1 else []
    )
    seeds = None if ranks is None else ranks.step_seeds(state.rng, n)
    for t in range(n) if ranks is None else ranks.own_steps(n):
        if seeds is not None:  # a step's draws do not depend on how many ranks there are
            state.generator.manual_seed(seeds[t])
        with autocast:
            z_t = module.encode(t, data.features[t], data.attention[t])
            if n > 1:
                s = partners[t]
                z_s = module.encode(s, data.features[s], data.attention[s])
            rec = reconstruction_term(module, t, z_t, state, config)
            if n > 1 and config.reconstruct_partner:
                # The partner is encoded anyway: its graph is a second target for free.
                rec = 0.5 * (rec + reconstruction_term(module, s, z_s, state, config))
        if n > 1:
            loss, parts = combine_losses(
                rec,
                z_t.float(),
                z_s.float(),
                state.pairs[(t, s)],
                config.model,
                state.generator,
            )
            terms = [parts["reconstruction"], parts["similarity"], parts["contrastive"]]
        else:
            loss = rec
            terms = [loss.detach(), torch.zeros((), device=device), torch.zeros((), device=device)]
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if ranks is not None:
            ranks.average_gradients(module, t, n)
        state.optimizer.step()
        sums += torch.stack([loss.detach().float(), *(x.detach().float() for x in terms)])
    if ranks is not None:
        ranks.finish_epoch(module, state.optimizer, n)
        sums = ranks.sum(sums)
    means = (sums / n).tolist()  # the one host sync of the epoch
    return dict(zip(LOSS_TERMS, means, strict=True))


@torch.no_grad()
def embed(module: MuSeGNNModule, data: DeviceGraphs) -> list[np.ndarray]:
    module.eval()
    out = [
        module.encode(i, data.features[i], data.attention[i]).float().cpu().numpy()
        for i in range(len(data.graphs))
    ]
    module.train()
    return out


# ------------------------------------------------------------------------ outputs
def build_embedding_table(
    graphs: list[GeneGraph], embeddings: list[np.ndarray], run_name: str, groups: list[str]
):
    """One row per (gene, dataset) with the metadata the pages and metrics need."""
    import anndata as ad
    import pandas as pd

    frames = []
    for graph, group in zip(graphs, groups, strict=True):
        frames.append(
            pd.DataFrame(
                {
                    "gene": graph.genes,
                    "original_gene": graph.original_genes,
                    "dataset": graph.dataset,
                    "tissue": graph.info.get("tissue", "unknown"),
                    "modality": graph.info.get("modality", "unknown"),
                    "species": graph.info.get("species", "unknown"),
                    "group": group,
                }
            )
        )
    obs = pd.concat(frames, ignore_index=True)
    obs.index = (obs["dataset"] + ":" + obs["gene"]).to_numpy()
    counts = obs.groupby("gene")["dataset"].transform("nunique")
    obs["n_datasets_with_gene"] = counts.to_numpy()
    obs["in_all_datasets"] = (counts == len(graphs)).to_numpy()
    for column in ("dataset", "tissue", "modality", "species", "group"):
        obs[column] = obs[column].astype("category")
    adata = ad.AnnData(X=np.concatenate(embeddings).astype(np.float32), obs=obs)
    adata.uns["run"] = run_name
    adata.uns["datasets"] = [g.dataset for g in graphs]
    return adata


def add_umap_and_clusters(adata, config: TrainConfig) -> None:
    """UMAP (umap-learn) and Leiden clusters (leidenalg) of the joint embedding, seeded."""
    import umap
    from sklearn.neighbors import NearestNeighbors

    from .analysis.clusters import cluster_embedding

    n_neighbors = max(2, min(config.umap_neighbors, adata.n_obs - 1))
    X = np.asarray(adata.X, dtype=np.float32)
    # Exact neighbours (each row first among its own) instead of UMAP's NN-descent: for
    # a few ten thousand rows they take under a second, where NN-descent's JIT
    # compilation alone takes about 25 s in every new process.
    distances, indices = NearestNeighbors(n_neighbors=n_neighbors).fit(X).kneighbors(X)
    reducer = umap.UMAP(
        n_neighbors=n_neighbors,
        random_state=config.seed,
        metric="euclidean",
        precomputed_knn=(indices, distances, None),
    )
    with warnings.catch_warnings():
        # Without a search index UMAP cannot place new rows later; nothing here does.
        warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]")
        adata.obsm["X_umap"] = reducer.fit_transform(X).astype(np.float32)
    cluster_embedding(
        adata, resolution=config.leiden_resolution, n_neighbors=n_neighbors, seed=config.seed
    )


# ---------------------------------------------------------------------- the entry
def _prepare_graphs(
    workspace: Workspace, datasets: list[str] | None, config: TrainConfig
) -> tuple[list[GeneGraph], list[str]]:
    summaries = build_graphs(workspace, datasets, config.graph)
    graphs = [load_graph(workspace, s.dataset, s.fingerprint) for s in summaries]
    return graphs, [s.fingerprint for s in summaries]


def train(
    workspace: Workspace,
    config: TrainConfig | None = None,
    *,
    datasets: list[str] | None = None,
    run_name: str | None = None,
    resume: bool = False,
    callback: Callback | None = None,
    distributed: Distributed | None = None,
) -> Run:
    """Train (or resume) a run; returns its folder. One training per workspace at a time.

    Progress goes to ``callback`` and to the run's ``progress.jsonl``. A resumed run keeps
    its own settings (:func:`resumed_config`); ``config`` can only extend its epochs.
    Under torchrun, ``distributed`` is this rank (:mod:`musegnn_core.distributed`): rank 0
    takes the lock and writes; the other ranks train beside it and write nothing.
    """
    if config is None and not resume:
        config = make_config()
    if distributed is not None and not distributed.lead:
        return _train_locked(workspace, config, datasets, run_name, resume, None, distributed)
    with file_lock(workspace.training_lock_path, blocking=False) as held:
        if not held:
            running = [r.name for r in list_runs(workspace) if r.status().get("state") == "running"]
            raise WorkspaceError(
                "Another training is already running in this workspace"
                + (f" (run {running[0]})" if running else "")
                + ": wait for it to finish or stop it first."
            )
        recorder = ProgressRecorder(callback)
        try:
            return _train_locked(
                workspace, config, datasets, run_name, resume, recorder, distributed
            )
        except BaseException as exc:
            recorder.failed(exc)
            raise


def resumed_config(run: Run, epochs: int | None = None) -> TrainConfig:
    """The one rule of resuming: a run continues with the settings it was started with;
    ``epochs`` beyond its own extend it (a finished or stopped run trains further)."""
    config = TrainConfig.from_dict(run.config()["train"])
    if epochs is not None and epochs > config.epochs:
        config = replace(config, epochs=epochs)
    return config


def _train_locked(workspace, config, datasets, run_name, resume, callback, distributed=None):
    notify = callback or (lambda event: None)
    lead = distributed is None or distributed.lead
    if resume:
        if not run_name:
            raise ValidationError("Say which run to resume (--run-name).")
        run = get_run(workspace, run_name)
        config = resumed_config(run, None if config is None else config.epochs)
        datasets = run.config()["datasets"]
    else:
        run = run_folder(
            workspace,
            check_run_name(run_name) if run_name else new_run_name(workspace, config.preset),
        )
        if lead and run.config_path.exists():  # a start that failed before training leaves none
            raise WorkspaceError(
                f"A run named {run.name!r} already exists: choose another name or resume it."
            )
        # Unknown names and datasets sharing no gene are refused before anything is written
        # (the run's progress file, a graph cached for nothing).
        for name in datasets or ():
            workspace.dataset(name)
        check_datasets_share_genes(workspace, datasets)
    if distributed is None:
        device = torch.device(resolve_device(config.device))
    else:
        device = distributed.device(config.device)
    if not lead:  # rank 0 keeps the run folder; the other ranks write nothing
        run = FollowerRun(run.root)
    if isinstance(notify, ProgressRecorder):
        notify.attach(run.root, resumed=resume)
    notify(ProgressEvent(run.name, "graphs", message="building graphs"))
    with distributed.lead_first() if distributed else contextlib.nullcontext():
        graphs, fingerprints = _prepare_graphs(workspace, datasets, config)
    check_shared_genes(graphs)
    if resume and fingerprints != run.config().get("graph_fingerprints"):
        raise WorkspaceError(
            f"The graphs of run {run.name} changed since it started (datasets re-imported or "
            "deleted); start a new run instead."
        )

    torch.manual_seed(config.seed)
    specs = dataset_specs(graphs, config.model.share)
    module = MuSeGNNModule(specs, config.model).to(device)
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed)
    state = TrainingState(
        module=module,
        optimizer=make_optimizer(module, config),
        data=to_device(graphs, device, config.model.reconstruction),
        pairs={k: v.to(device) for k, v in compute_all_pair_stats(graphs, config.seed).items()},
        rng=np.random.default_rng(config.seed),
        generator=generator,
        device=device,
    )
    state.distributed = distributed
    if config.partner_draw == "overlap":
        state.partner_overlap = partner_overlap(state.pairs, len(graphs))
    start_epoch = 0

    if resume:
        checkpoint = load_checkpoint(run, device)
        module.load_state_dict(checkpoint["model"])
        state.optimizer.load_state_dict(checkpoint["optimizer"])
        state.rng.bit_generator.state = checkpoint["numpy_rng"]
        generator.set_state(
            checkpoint["torch_generator"].cpu()
            if device.type == "cpu"
            else checkpoint["torch_generator"]
        )
        torch.set_rng_state(checkpoint["torch_rng"].cpu())
        state.history, start_epoch = list(checkpoint["history"]), int(checkpoint["epoch"])
        run.clear_stop()
    elif lead:
        run.root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            run.config_path,
            {
                "name": run.name,
                "created_at": now_iso(),
                "train": config.to_dict(),
                "datasets": [g.dataset for g in graphs],
                "graph_fingerprints": fingerprints,
                "groups": [s.group for s in specs],
                "device": str(device),
                "device_name": (
                    torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
                ),
                "n_parameters": sum(p.numel() for p in module.parameters()),
                "versions": software_versions(
                    "torch", "torch-geometric", "numpy", "scanpy", "umap-learn", "leidenalg"
                ),
            },
        )
    run.write_status(
        state="running",
        pid=os.getpid(),
        epoch=start_epoch,
        epochs=config.epochs,
        started_at=now_iso(),
        device=str(device),
        message="training",
    )
    stop = StopFlag(run)
    try:
        with stop.installed():
            stopped = _loop(run, state, config, start_epoch, stop, notify)
        if not lead:
            return run
        if stopped:
            run.write_status(state="stopped", message="stopped on request; resume to continue")
            notify(
                ProgressEvent(
                    run.name,
                    "stopped",
                    epoch=state.history[-1]["epoch"] if state.history else 0,
                    epochs=config.epochs,
                    message="stopped",
                )
            )
            return run
        notify(
            ProgressEvent(
                run.name,
                "embedding",
                epoch=config.epochs,
                epochs=config.epochs,
                message="computing embeddings, UMAP and clusters",
            )
        )
        table = build_embedding_table(
            graphs, embed(module, state.data), run.name, [s.group for s in specs]
        )
        add_umap_and_clusters(table, config)
        with atomic_path(run.embeddings_path) as tmp:
            table.write_h5ad(tmp)
        annotate_after_training(workspace, run)  # never raises; recomputed on demand
        run.write_status(
            state="completed",
            finished_at=now_iso(),
            message="completed",
            n_clusters=int(table.obs["leiden"].nunique()),
        )
        notify(
            ProgressEvent(
                run.name,
                "done",
                epoch=config.epochs,
                epochs=config.epochs,
                losses=state.history[-1] if state.history else {},
                message="completed",
            )
        )
        return run
    except MuseGNNError:
        run.write_status(state="failed", message="failed; see the error message")
        raise
    except BaseException as exc:
        run.write_status(state="failed", message=f"failed: {type(exc).__name__}: {exc}"[:500])
        raise


def _loop(
    run: Run,
    state: TrainingState,
    config: TrainConfig,
    start_epoch: int,
    stop: StopFlag,
    notify: Callback,
) -> bool:
    """Epochs from ``start_epoch``; returns True when stopped early (with a checkpoint)."""
    timer = time.perf_counter()
    for done_here, epoch in enumerate(range(start_epoch + 1, config.epochs + 1), start=1):
        if config.model.resample_neighbours:
            graphs = state.data.graphs
            state.pairs = {
                (t, s): resample_neighbours(p, graphs[t].adjacency, graphs[s].adjacency, state.rng)
                for (t, s), p in state.pairs.items()
            }
        set_learning_rates(state.optimizer, config, epoch)
        epoch_start = time.perf_counter()
        losses = train_epoch(state, config)
        seconds = time.perf_counter() - epoch_start
        state.history.append(
            {
                "epoch": epoch,
                **{k: round(v, 6) for k, v in losses.items()},
                "seconds": round(seconds, 4),
            }
        )
        per_epoch = (time.perf_counter() - timer) / done_here
        eta = per_epoch * (config.epochs - epoch)
        if not all(math.isfinite(v) for v in losses.values()):
            raise ValidationError(
                f"Training diverged at epoch {epoch} (loss is not finite); lower the learning rate."
            )
        notify(
            ProgressEvent(
                run.name,
                "training",
                epoch=epoch,
                epochs=config.epochs,
                losses=losses,
                seconds_per_epoch=per_epoch,
                eta_seconds=eta,
            )
        )
        # Checked after the callback so that a stop requested while this epoch was being
        # reported takes effect now, with a checkpoint of this epoch.
        stopping = stop() if state.distributed is None else state.distributed.any(stop())
        checkpoint = epoch % config.checkpoint_every == 0 or epoch == config.epochs or stopping
        if checkpoint and state.writes_outputs:
            save_checkpoint(run, state, epoch)
            write_losses(run, state.history)
        run.write_status(
            epoch=epoch,
            losses=losses,
            seconds_per_epoch=round(per_epoch, 4),
            eta_seconds=round(eta, 1),
            checkpoint_epoch=epoch if checkpoint else run.raw_status().get("checkpoint_epoch", 0),
        )
        if stopping and epoch < config.epochs:
            return True
    return False

"""The notebook API: MuSe-GNN on AnnData objects, in the scverse style.

:func:`fit` takes AnnData objects of raw counts and returns the joint (gene, dataset)
embedding as an AnnData, doing in a temporary (or given) workspace what the app and the
command line do: import with the same checks, build graphs, train, embed. The other
functions are thin calls of the same core functions on a workspace that already holds
datasets and runs, each returning an AnnData or a DataFrame::

    import musegnn_core as mg

    embedding = mg.fit([adata_a, adata_b], preset="quick", tissue="pancreas")
    mg.clusters("ws", "quick-1")          # with a kept workspace
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import anndata as ad
import pandas as pd

from .errors import ValidationError, WorkspaceError
from .threads import configure_threads
from .workspace import Workspace

# A notebook never passes through the command line's entry point (__main__), so the
# notebook API applies the thread settings as it loads, before anything it calls imports
# torch, whose OpenMP runtime reads them once: without them a training beside another busy
# process spins (the quick preset at 15 s per epoch instead of 2). Values already set stay.
configure_threads()

WorkspaceLike = str | Path | Workspace
#: The metadata that :func:`fit` takes as arguments: one value for all datasets or one each.
METADATA_FIELDS = ("name", "species", "tissue", "modality", "technology")


def open_workspace(workspace: WorkspaceLike, create: bool = False) -> Workspace:
    """A :class:`Workspace` from a folder (or the workspace itself)."""
    if isinstance(workspace, Workspace):
        return workspace
    return Workspace.open(workspace, create=create)


# ------------------------------------------------------------------------ fit
def fit(
    adatas: Sequence[ad.AnnData],
    preset: str = "quick",
    *,
    name: str | Sequence[str] | None = None,
    species: str | Sequence[str] | None = None,
    tissue: str | Sequence[str] | None = None,
    modality: str | Sequence[str] | None = None,
    technology: str | Sequence[str] | None = None,
    workspace: WorkspaceLike | None = None,
    run_name: str | None = None,
    progress: Callable[[Any], None] | None = None,
    **settings: Any,
) -> ad.AnnData:
    """Train MuSe-GNN on ``adatas`` and return the joint gene embedding.

    Parameters
    ----------
    adatas
        Two or more AnnData objects, cells x genes, raw counts in ``X`` (or in
        ``layers['counts']`` or ``raw``). Spatial data keep spot coordinates in
        ``obsm['spatial']``.
    preset
        ``"quick"`` (minutes on a CPU) or ``"paper"`` (the reference recipe).
    name, species, tissue, modality, technology
        Dataset metadata: one value for every dataset or a sequence with one per
        dataset. Unset values come from ``uns['dataset']``, then from a reported guess,
        exactly as when importing files.
    workspace
        A folder to keep the datasets, graphs and run in (a new or existing workspace
        whose datasets have other names); default a temporary one, removed afterwards.
    run_name
        Name of the run folder (default ``<preset>-<date>``).
    progress
        Called with a :class:`musegnn_core.train.ProgressEvent` after every epoch.
    **settings
        Training and graph settings overriding the preset's, by their names in
        :data:`musegnn_core.settings.SETTINGS` (``epochs=30``, ``n_genes=500``, ...).

    Returns
    -------
    AnnData with one row per (gene, dataset): the embedding in ``X``, ``obs`` columns
    ``gene``, ``dataset``, ``tissue``, ``modality``, ``species``, ``leiden``, the UMAP in
    ``obsm['X_umap']``, and ``uns['musegnn']`` (run name, preset, settings, workspace).
    """
    from .settings import make_config

    adatas = list(adatas)
    if len(adatas) < 2 or not all(isinstance(a, ad.AnnData) for a in adatas):
        raise ValidationError("fit needs a list of two or more AnnData objects.")
    config = make_config(preset, **settings)  # refuse bad settings before any work
    metadata = _per_dataset_metadata(
        len(adatas),
        name=name,
        species=species,
        tissue=tissue,
        modality=modality,
        technology=technology,
    )
    with workspace_for_fit(workspace) as ws:
        names = import_anndatas(ws, adatas, metadata)
        embedding = train(ws, names, preset, run_name=run_name, progress=progress, config=config)
        embedding.uns["musegnn"] = {
            "run": str(embedding.uns.get("run", "")),
            "preset": preset,
            "settings": {k: v for k, v in settings.items() if v is not None},
            "workspace": str(ws.root) if workspace is not None else None,
        }
        return embedding


@contextlib.contextmanager
def workspace_for_fit(workspace: WorkspaceLike | None) -> Iterator[Workspace]:
    """The given workspace (created if new), or a temporary one removed afterwards."""
    if workspace is not None:
        yield open_workspace(workspace, create=True)
        return
    with tempfile.TemporaryDirectory(prefix="musegnn-") as folder:
        yield Workspace.open(Path(folder) / "workspace")


def _per_dataset_metadata(n: int, **values) -> list[dict[str, str]]:
    """One metadata dict per dataset from arguments that are single values or sequences."""
    out: list[dict[str, str]] = [{} for _ in range(n)]
    for key, value in values.items():
        if value is None:
            continue
        if key == "name" and isinstance(value, str):
            raise ValidationError("name= needs one name per dataset.")
        items = [value] * n if isinstance(value, str) else list(value)
        if len(items) != n:
            raise ValidationError(f"{key}= has {len(items)} values for {n} datasets.")
        for entry, item in zip(out, items, strict=True):
            if item is not None:
                entry[key] = str(item)
    return out


def import_anndatas(
    workspace: Workspace, adatas: Sequence[ad.AnnData], metadata: Sequence[dict[str, str]]
) -> list[str]:
    """Import in-memory AnnData objects with the checks of ``import`` (all or nothing).

    Each object is written to a staging file and read back by the same reader, validator
    and metadata rules as an imported ``.h5ad``, so a notebook gets exactly what the app
    would have stored.
    """
    from .data.importer import ImportOptions, prepare_dataset
    from .storage import TMP_PREFIX

    prepared = []
    with tempfile.TemporaryDirectory(dir=workspace.root, prefix=f"{TMP_PREFIX}fit-") as tmp:
        for i, (adata, meta) in enumerate(zip(adatas, metadata, strict=True)):
            stored = dict(adata.uns.get("dataset", {}) or {})
            label = meta.get("name") or stored.get("name") or f"dataset{i + 1}"
            path = Path(tmp) / f"{Path(str(label)).name}.h5ad"
            adata.write_h5ad(path)
            options = ImportOptions(**{k: v for k, v in meta.items()})
            prepared.append(prepare_dataset(path, options))
    workspace.add_datasets([(p.adata, p.meta) for p in prepared])
    return [p.meta.name for p in prepared]


# ------------------------------------------------------- functions on a workspace
def build_graphs(
    workspace: WorkspaceLike,
    datasets: Sequence[str] | None = None,
    preset: str = "quick",
    *,
    force: bool = False,
    **settings: Any,
) -> pd.DataFrame:
    """Build (or reuse) the co-expression graphs with a preset's graph settings.

    Returns one row per dataset: genes, edges, density, seconds, cached, fingerprint.
    """
    from dataclasses import asdict

    from .graphs.build import build_graphs as build
    from .settings import make_config

    config = make_config(preset, **settings).graph
    summaries = build(
        open_workspace(workspace), list(datasets) if datasets else None, config, force=force
    )
    return pd.DataFrame([asdict(s) for s in summaries])


def train(
    workspace: WorkspaceLike,
    datasets: Sequence[str] | None = None,
    preset: str = "quick",
    *,
    run_name: str | None = None,
    resume: bool = False,
    progress: Callable[[Any], None] | None = None,
    config: Any = None,
    **settings: Any,
) -> ad.AnnData:
    """Train (or resume) a run on the workspace's datasets; returns its embedding.

    ``config`` (a :class:`musegnn_core.settings.TrainConfig`) replaces preset and
    settings. ``resume=True`` continues the run named ``run_name`` with its own settings
    (``epochs=`` may extend it). A run stopped early (interrupted kernel, STOP file) raises
    with the resume call to make.
    """
    from .settings import make_config
    from .train import train as train_run

    ws = open_workspace(workspace)
    if resume:
        if set(settings) - {"epochs"} or datasets:
            raise ValidationError(
                "A resumed run keeps its own datasets and settings: give only epochs=."
            )
        if config is None and settings.get("epochs") is not None:
            config = make_config(preset, epochs=settings["epochs"])
    elif config is None:
        config = make_config(preset, **settings)
    run = train_run(
        ws,
        config,
        datasets=list(datasets) if datasets else None,
        run_name=run_name,
        resume=resume,
        callback=progress,
    )
    status = run.status()
    if status.get("state") != "completed":
        raise WorkspaceError(
            f"Run {run.name} {status.get('state', 'stopped')} at epoch {status.get('epoch')} "
            f"of {status.get('epochs')}; continue it with train(..., run_name={run.name!r}, "
            "resume=True)."
        )
    return embedding(ws, run.name)


def embedding(workspace: WorkspaceLike, run: str) -> ad.AnnData:
    """A completed run's embedding, in memory."""
    from .analysis.evaluate import load_embedding
    from .runs import get_run

    return load_embedding(get_run(open_workspace(workspace), run))


def evaluate(
    workspace: WorkspaceLike,
    run: str,
    baselines: Sequence[str] | None = None,
    gene_sets: Sequence[str | Path] | None = None,
    *,
    seed: int = 0,
) -> pd.DataFrame:
    """The paper's six metrics and the gene-set measures of a run and its baselines
    (default: every baseline, as the CLI and the Benchmark page)."""
    from .analysis.evaluate import evaluate_run
    from .analysis.libraries import resolve_libraries

    ws = open_workspace(workspace)
    paths = resolve_libraries(ws, gene_sets) if gene_sets else None
    return evaluate_run(ws, run, baselines, paths, seed=seed)


def clusters(
    workspace: WorkspaceLike,
    run: str,
    resolution: float | None = None,
    cluster: str | None = None,
) -> pd.DataFrame:
    """The run's Leiden clusters (size and composition), or the genes of one ``cluster``."""
    from .analysis.clusters import cluster_summary, gene_occurrences, run_clustering
    from .analysis.evaluate import load_embedding
    from .runs import get_run

    found = get_run(open_workspace(workspace), run)
    table = load_embedding(found)
    labels = run_clustering(found, table, resolution).labels
    if cluster is not None:
        return gene_occurrences(table, labels, str(cluster))
    return cluster_summary(table, labels)


def enrich(
    workspace: WorkspaceLike,
    run: str,
    *,
    cluster: str | None = None,
    genes: Sequence[str] | None = None,
    gene_sets: Sequence[str | Path] = (),
    enrichr: Sequence[str] = (),
    resolution: float | None = None,
) -> pd.DataFrame:
    """Over-representation of a cluster's or a gene list's genes in gene-set libraries."""
    from .analysis.enrich import enrich_run
    from .analysis.libraries import fetch_enrichr_library, resolve_libraries

    ws = open_workspace(workspace)
    if (cluster is None) == (genes is None):
        raise ValidationError("Give either cluster= or genes=.")
    if not gene_sets and not enrichr:
        raise ValidationError("Give gene-set libraries with gene_sets= and/or enrichr=.")
    paths = resolve_libraries(ws, list(gene_sets))
    paths += [fetch_enrichr_library(ws, library).path for library in enrichr]
    return enrich_run(
        ws,
        run,
        cluster=None if cluster is None else str(cluster),
        genes=None if genes is None else list(genes),
        gene_set_paths=paths,
        resolution=resolution,
    )


def neighbors(
    workspace: WorkspaceLike,
    run: str,
    gene: str,
    top: int = 20,
    datasets: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The (gene, dataset) rows nearest to any instance of ``gene`` (cosine similarity)."""
    from .analysis.neighbors import nearest_genes

    return nearest_genes(embedding(workspace, run), gene, top, datasets)

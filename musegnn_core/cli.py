"""``python -m musegnn_core``: the command line over the same functions the pages call.

Each subcommand is a pair (``add_<name>_arguments``, ``run_<name>``) registered in
:data:`COMMANDS`; later stages (build-graphs, train, evaluate, enrich, export) slot
in the same way. Errors the user can fix print one line on stderr and exit with 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from . import __version__
from .errors import MuseGNNError, ValidationError
from .paths import default_workspace
from .storage import atomic_path

EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one readable line and exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


def _add_workspace(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workspace",
        "-w",
        type=Path,
        default=None,
        help="workspace folder (default: $MUSEGNN_WORKSPACE or ./workspace)",
    )


def open_workspace(args: argparse.Namespace, create: bool = True):
    from .workspace import Workspace

    return Workspace.open(args.workspace or default_workspace(), create=create)


# ----------------------------------------------------------------------- import
def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    from .data.readers import ORIENTATIONS
    from .metadata import MODALITIES, SPECIES

    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help=".h5ad, 10x .h5, 10x folder, or CSV/TSV count table",
    )
    _add_workspace(parser)
    parser.add_argument("--name", help="dataset name (default: from the file)")
    parser.add_argument("--species", choices=SPECIES)
    parser.add_argument("--tissue")
    parser.add_argument("--modality", choices=MODALITIES)
    parser.add_argument("--technology")
    parser.add_argument(
        "--coordinates", type=Path, help="CSV/TSV of spot name, x, y (spatial data)"
    )
    parser.add_argument(
        "--orientation",
        choices=ORIENTATIONS,
        default="auto",
        help="for count tables: which way rows and columns go",
    )
    parser.add_argument(
        "--allow-non-integer",
        action="store_true",
        help="round non-integer values (estimated counts) instead of refusing them",
    )


def run_import(args: argparse.Namespace) -> int:
    from .data.importer import ImportOptions, import_datasets

    workspace = open_workspace(args)
    options = ImportOptions(
        name=args.name,
        species=args.species,
        tissue=args.tissue,
        modality=args.modality,
        technology=args.technology,
        allow_non_integer=args.allow_non_integer,
        orientation=args.orientation,
        coordinates=args.coordinates,
    )
    for item in import_datasets(workspace, args.paths, options):
        m = item.meta
        print(
            f"imported {m.name}: {m.n_cells} cells x {m.n_genes} genes "
            f"({m.species}, {m.tissue}, {m.modality}, {m.source_format})"
        )
        for note in item.notes:
            print(f"  note: {note}")
    return 0


# ------------------------------------------------------------------------- list
def add_list_arguments(parser: argparse.ArgumentParser) -> None:
    _add_workspace(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_list(args: argparse.Namespace) -> int:
    workspace = open_workspace(args)
    metas = workspace.datasets()
    if args.json:
        print(json.dumps([m.to_dict() for m in metas], indent=2))
        return 0
    if not metas:
        print(f"No datasets in {workspace.root}. Import some with `python -m musegnn_core import`.")
        return 0
    columns = ("name", "species", "tissue", "modality", "technology", "n_cells", "n_genes")
    rows = [[str(getattr(m, c)) for c in columns] for m in metas]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    for row in [list(columns), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


# ----------------------------------------------------------------------- delete
def add_delete_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NAME")
    _add_workspace(parser)


def run_delete(args: argparse.Namespace) -> int:
    workspace = open_workspace(args, create=False)
    for name in args.names:
        workspace.delete_dataset(name)
        print(f"deleted {name}")
    return 0


# ------------------------------------------------------------------------- demo
def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    _add_workspace(parser)
    parser.add_argument(
        "--simulated",
        action="store_true",
        help="use the simulated atlas even when real demo data is available",
    )


def run_demo(args: argparse.Namespace) -> int:
    from .data.demo import fill_demo

    workspace = open_workspace(args)
    kind, names = fill_demo(workspace, prefer_simulated=args.simulated)
    print(f"filled {workspace.root} with the {kind} demo: {', '.join(names)}")
    return 0


# ----------------------------------------------------------------- build-graphs
def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _boolean(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "yes", "1", "on"):
        return True
    if value in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def _symbol_list(text: str) -> tuple[str, ...]:
    """Gene symbols separated by commas, or ``@FILE`` with one or more per line."""
    from .settings import parse_list

    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise argparse.ArgumentTypeError(f"cannot read {text[1:]}: {exc.strerror}") from exc
    return parse_list(text)


_OPTION_TYPES = {"int": int, "float": float, "bool": _boolean, "list": _symbol_list, "text": str}
METAVARS = {"int": "N", "float": "X", "bool": "true|false", "list": "LIST", "text": "TEXT"}


def add_setting_options(parser: argparse.ArgumentParser, specs: dict, *, defaults: bool) -> None:
    """One option per setting of musegnn_core.settings, with its flag, type, choices and help.

    ``defaults``: the option's default is the setting's (build-graphs); otherwise None, so
    that an option not given keeps the preset's value (train).
    """
    from .settings import bounds_text

    for spec in specs.values():
        meta = spec.meta
        text = (meta.help or meta.label).rstrip(".")
        if meta.choices:
            text += " (" + ", ".join(f"{c}: {meta.describe_choice(c)}" for c in meta.choices) + ")"
        if spec.kind == "list":
            text += " (comma-separated, or @FILE)"
        if spec.kind in ("int", "float") and (meta.low is not None or meta.high is not None):
            text += f"; {bounds_text(meta)}"
        if defaults:
            default = ",".join(spec.default) if spec.kind == "list" else spec.default
            text += f" (default {default})"
        parser.add_argument(
            meta.flag,
            *meta.aliases,
            dest=spec.dest,
            type=_OPTION_TYPES[spec.kind],
            choices=meta.choices or None,
            default=spec.default if defaults else None,
            metavar=None if meta.choices else METAVARS[spec.kind],
            help=text.replace("%", "%%"),
            # A switch given alone turns the setting on; "--switch false" turns it off.
            **({"nargs": "?", "const": True} if spec.kind == "bool" else {}),
        )


def add_build_graphs_arguments(parser: argparse.ArgumentParser) -> None:
    from .settings import GRAPH_SETTINGS

    _add_workspace(parser)
    parser.add_argument("--datasets", type=_comma_list, help="comma-separated names (default: all)")
    add_setting_options(parser, GRAPH_SETTINGS, defaults=True)
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    parser.add_argument(
        "--workers",
        default="1",
        metavar="N|auto",
        help="build datasets in N parallel processes ('auto': as the cores and the memory "
        "limit allow); the graphs are the same (default 1)",
    )
    parser.add_argument(
        "--memory-limit-gb",
        type=float,
        metavar="GB",
        help="memory the parallel workers may hold together (default: half the available)",
    )


def run_build_graphs(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .graphs.build import GraphConfig, build_graphs
    from .graphs.pool import parse_workers
    from .settings import GRAPH_SETTINGS

    workspace = open_workspace(args, create=False)
    config = GraphConfig(**{name: getattr(args, name) for name in GRAPH_SETTINGS})
    bar = tqdm(
        total=100,
        file=sys.stderr,
        leave=False,
        disable=not sys.stderr.isatty(),
        bar_format="{percentage:3.0f}% |{bar:24}| {desc}",
    )

    def progress(fraction: float, message: str) -> None:
        bar.n = round(100 * fraction)
        bar.set_description(message)

    try:
        summaries = build_graphs(
            workspace,
            args.datasets,
            config,
            force=args.force,
            progress=progress,
            workers=parse_workers(args.workers),
            memory_limit_gb=args.memory_limit_gb,
        )
    finally:
        bar.close()
    for s in summaries:
        print(
            f"{s.dataset}: {s.n_genes} genes, {s.n_edges} edges, density {s.density:.3f}, "
            f"{s.seconds:.1f} s{' (cached)' if s.cached else ''}"
        )
    return 0


# ------------------------------------------------------------------------ train
def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from .settings import PRESETS, SETTINGS

    _add_workspace(parser)
    parser.add_argument("--datasets", type=_comma_list, help="comma-separated names (default: all)")
    parser.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        help="quick (the default): minutes on a CPU; paper: the reference's 2000 epochs",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a JSON file with the run's settings ('train', as in a run's config.json) and "
        "optionally its 'datasets' (the app starts its trainings this way)",
    )
    parser.add_argument("--run-name", help="name of the run folder (default: preset-date)")
    parser.add_argument(
        "--resume", action="store_true", help="continue the stopped run named by --run-name"
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="one of several processes started by torchrun (one per GPU, or CPU processes): "
        "each runs a share of every epoch's steps; see README, 'Training on several GPUs'",
    )
    # The settings; each defaults to the preset's value.
    add_setting_options(parser, SETTINGS, defaults=False)


def train_overrides(args: argparse.Namespace) -> dict:
    """The settings given on the command line (the others keep the preset's values)."""
    from .settings import SETTINGS

    return {k: getattr(args, k) for k in SETTINGS if getattr(args, k) is not None}


def train_request(args: argparse.Namespace):
    """The configuration and datasets a ``train`` command asks for.

    Settings come from a preset with options, or from a ``--config`` file; a resumed run
    keeps its own (``--epochs`` may extend it; see musegnn_core.train.resumed_config).
    """
    from .jobs import make_train_config
    from .settings import TrainConfig

    overrides = train_overrides(args)
    if args.resume:
        if set(overrides) - {"epochs"} or args.config or args.preset or args.datasets:
            raise ValidationError(
                "--resume continues a run with its own datasets and settings: only --epochs "
                "(to train it further) may be given."
            )
        return (None if args.epochs is None else make_train_config("quick", overrides)), None
    if args.config is None:
        return make_train_config(args.preset or "quick", overrides), args.datasets
    if overrides or args.preset:
        raise ValidationError("Give the settings either in --config or as options, not both.")
    try:
        request = json.loads(args.config.read_text(encoding="utf-8"))
        config = TrainConfig.from_dict(request["train"])
        datasets = args.datasets or request.get("datasets")
    except OSError as exc:
        raise ValidationError(f"Cannot read {args.config}: {exc.strerror or exc}.") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationError(
            f"{args.config} is not a training configuration ({type(exc).__name__}: {exc})."
        ) from exc
    if config.device == "cuda":
        make_train_config("quick", {"device": "cuda"})  # a clear message when there is no GPU
    return config, datasets


def run_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .distributed import process_group
    from .runs import new_run_name
    from .train import train

    workspace = open_workspace(args, create=False)
    config, datasets = train_request(args)
    bar = None

    interactive = sys.stderr.isatty()

    def progress(event) -> None:
        nonlocal bar
        if event.phase == "training" and not interactive:
            # A log file gets a plain line about twenty times per run, not bar redraws.
            if event.epoch % max(1, event.epochs // 20) == 0 or event.epoch == event.epochs:
                terms = ", ".join(f"{k} {v:.4f}" for k, v in event.losses.items())
                print(
                    f"{event.run}: epoch {event.epoch}/{event.epochs}: {terms}; "
                    f"{event.seconds_per_epoch:.2f} s/epoch, ETA {event.eta_seconds:.0f} s",
                    file=sys.stderr,
                )
        elif event.phase == "training":
            if bar is None:
                bar = tqdm(
                    total=event.epochs,
                    initial=event.epoch - 1,
                    file=sys.stderr,
                    desc=event.run,
                    unit="epoch",
                )
            bar.update(event.epoch - bar.n)
            bar.set_postfix(
                {k[:5]: f"{v:.4f}" for k, v in event.losses.items()}
                | {"s/ep": f"{event.seconds_per_epoch:.2f}"}
            )
        elif event.message:
            print(f"{event.run}: {event.message}", file=sys.stderr)

    try:
        with contextlib.ExitStack() as stack:
            ranks = stack.enter_context(process_group()) if args.distributed else None
            run_name = args.run_name
            if ranks is not None and not args.resume:  # every rank trains the same run
                run_name = ranks.from_lead(
                    lambda: run_name or new_run_name(workspace, config.preset)
                )
            run = train(
                workspace,
                config,
                datasets=datasets,
                run_name=run_name,
                resume=args.resume,
                callback=progress if ranks is None or ranks.lead else None,
                distributed=ranks,
            )
            if ranks is not None and not ranks.lead:
                return 0  # rank 0 reports the run
    finally:
        if bar is not None:
            bar.close()
    status = run.status()
    print(
        f"run {run.name}: {status.get('state')} at epoch {status.get('epoch')} "
        f"of {status.get('epochs')} ({run.root})"
    )
    return 0 if status.get("state") == "completed" else 3


# --------------------------------------------------------------------- evaluate
def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    _add_workspace(parser)
    parser.add_argument("--run", required=True, help="run name")
    parser.add_argument(
        "--baselines",
        type=_comma_list,
        default=None,
        help="comma-separated: coexpression, profile, pca, gae, random (default: all)",
    )
    parser.add_argument(
        "--gene-sets",
        nargs="*",
        metavar="GMT",
        help="GMT libraries for the functional measures "
        "(default: the shared Hallmark and GO BP libraries when present)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")


def run_evaluate(args: argparse.Namespace) -> int:
    from .analysis.evaluate import evaluate_run

    workspace = open_workspace(args, create=False)
    table = evaluate_run(
        workspace,
        args.run,
        args.baselines,
        args.gene_sets,
        seed=args.seed,
        progress=lambda m: print(m, file=sys.stderr),
    )
    if args.json:
        print(table.to_json(indent=2))
    else:
        print(table.round(3).to_string())
        print(
            f"\ncommon genes: {'; '.join(table.attrs['common_gene_rule'])}; "
            f"{table.attrs['seconds']:.1f} s"
        )
    return 0


# ------------------------------------------------------------- enrich, neighbors
def add_enrich_arguments(parser: argparse.ArgumentParser) -> None:
    _add_workspace(parser)
    parser.add_argument("--run", required=True, help="run name")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--cluster", help="a Leiden cluster of the run")
    which.add_argument("--genes", type=_comma_list, help="comma-separated gene symbols")
    parser.add_argument(
        "--gene-sets",
        nargs="+",
        default=[],
        metavar="GMT",
        help="GMT files, folders of them, or names listed by `libraries`",
    )
    parser.add_argument(
        "--enrichr",
        nargs="+",
        default=[],
        metavar="LIBRARY",
        help="Enrichr libraries (fetched once when online, then cached in the workspace)",
    )
    parser.add_argument("--resolution", type=float, help="Leiden resolution of --cluster")
    parser.add_argument("--top", type=int, default=20, help="rows to print (default 20)")
    parser.add_argument("--output", help="also write the full table to this CSV file")
    parser.add_argument("--json", action="store_true")


def run_enrich(args: argparse.Namespace) -> int:
    from .analysis.enrich import enrich_run
    from .analysis.libraries import fetch_enrichr_library, resolve_libraries

    if args.top < 1:
        raise ValidationError(f"--top must be at least 1, not {args.top}.")
    workspace = open_workspace(args, create=False)
    if not args.gene_sets and not args.enrichr:
        raise ValidationError("Give gene-set libraries with --gene-sets and/or --enrichr.")
    paths = resolve_libraries(workspace, args.gene_sets)
    paths += [fetch_enrichr_library(workspace, name).path for name in args.enrichr]
    table = enrich_run(
        workspace,
        args.run,
        cluster=args.cluster,
        genes=args.genes,
        gene_set_paths=paths,
        resolution=args.resolution,
    )
    if args.output:
        with atomic_path(Path(args.output)) as tmp:
            table.to_csv(tmp, index=False)
    if args.json:
        print(table.to_json(orient="records", indent=2))
    elif table.empty:
        print("No gene set overlaps the selection.")
    else:
        print(table.head(args.top).to_string(index=False))
    return 0


def add_neighbors_arguments(parser: argparse.ArgumentParser) -> None:
    _add_workspace(parser)
    parser.add_argument("--run", required=True, help="run name")
    parser.add_argument("--gene", required=True)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--datasets", type=_comma_list, help="only these datasets")
    parser.add_argument("--json", action="store_true")


def run_neighbors(args: argparse.Namespace) -> int:
    from .analysis.evaluate import load_embedding
    from .analysis.neighbors import gene_instances, nearest_genes
    from .runs import get_run

    workspace = open_workspace(args, create=False)
    embedding = load_embedding(get_run(workspace, args.run))
    table = nearest_genes(embedding, args.gene, args.top, args.datasets)
    instances = gene_instances(embedding, args.gene)
    if args.json:
        print(
            json.dumps(
                {"neighbors": table.to_dict(orient="records"), "instances": instances.to_dict()},
                indent=2,
            )
        )
    else:
        print(table.to_string(index=False))
        print(f"\n{args.gene} in {len(instances)} datasets; cosine between its instances:")
        print(instances.to_string())
    return 0


# ------------------------------------------------- clusters, subgraph, libraries
def add_clusters_arguments(parser: argparse.ArgumentParser) -> None:
    _add_workspace(parser)
    parser.add_argument("--run", required=True, help="run name")
    parser.add_argument(
        "--resolution", type=float, help="Leiden resolution (default: the run's own)"
    )
    parser.add_argument("--cluster", help="list the genes of this cluster instead")
    parser.add_argument(
        "--gene-sets",
        nargs="+",
        metavar="GMT",
        help="libraries that name the clusters: GMT files, folders or names from `libraries` "
        "(default: Hallmark and GO BP, or the simulated atlas's planted modules)",
    )
    parser.add_argument(
        "--recompute", action="store_true", help="annotate again even if a cached result exists"
    )
    parser.add_argument("--json", action="store_true")


def run_clusters(args: argparse.Namespace) -> int:
    from .analysis.annotate import (
        cluster_gene_table,
        cluster_records,
        cluster_title,
        labelled_summary,
        run_annotations,
        run_graph_adjacency,
    )
    from .analysis.clusters import check_cluster_label, cluster_summary, run_clustering
    from .analysis.evaluate import load_embedding
    from .analysis.libraries import resolve_libraries
    from .runs import get_run

    workspace = open_workspace(args, create=False)
    run = get_run(workspace, args.run)
    embedding = load_embedding(run)
    clustering = run_clustering(run, embedding, args.resolution)
    paths = resolve_libraries(workspace, args.gene_sets) if args.gene_sets else None
    annotations = run_annotations(
        workspace, run, clustering.resolution, paths, recompute=args.recompute
    )
    if args.cluster is not None:
        check_cluster_label(args.cluster)
        table = cluster_gene_table(
            embedding, clustering.labels, args.cluster, run_graph_adjacency(workspace, run)
        )
        record = annotations.cluster(args.cluster)
        if args.json:  # the genes, as before; the cluster's label is in `clusters --json`
            print(table.to_json(orient="records", indent=2))
            return 0
        print(f"cluster {cluster_title(record['cluster'], record['label'])}\n")
        print(table.to_string(index=False))
        return 0
    summary = cluster_summary(embedding, clustering.labels)
    if args.json:
        print(json.dumps(cluster_records(summary, annotations), indent=2))
    else:
        print(labelled_summary(summary, annotations).to_string(index=False))
        print(
            f"\nresolution {clustering.resolution:g}: "
            f"{clustering.labels.nunique()} clusters"
            + (" (cached)" if clustering.cached else "")
            + f"; named by {', '.join(annotations.libraries) or 'hub genes only'}"
        )
    return 0


def add_subgraph_arguments(parser: argparse.ArgumentParser) -> None:
    _add_workspace(parser)
    parser.add_argument("--run", required=True, help="run name")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--gene", help="a gene symbol")
    which.add_argument("--cluster", help="a Leiden cluster of the run")
    which.add_argument("--genes", type=_comma_list, help="comma-separated gene symbols")
    parser.add_argument("--resolution", type=float, help="Leiden resolution of --cluster")
    parser.add_argument("--datasets", type=_comma_list, help="only these datasets' graphs")
    parser.add_argument("--max-neighbours", type=int, default=10)
    parser.add_argument("--max-nodes", type=int, default=60)
    parser.add_argument("--max-edges", type=int, default=600)
    parser.add_argument("--json", action="store_true")


def run_subgraph(args: argparse.Namespace) -> int:
    from .analysis.clusters import cluster_genes, run_clustering
    from .analysis.evaluate import load_embedding, run_graphs
    from .analysis.subgraph import coexpression_subgraph
    from .runs import get_run

    workspace = open_workspace(args, create=False)
    run = get_run(workspace, args.run)
    if args.cluster is not None:
        embedding = load_embedding(run)
        labels = run_clustering(run, embedding, args.resolution).labels
        genes = cluster_genes(embedding, labels, args.cluster)
    else:
        genes = [args.gene] if args.gene else args.genes
    view = coexpression_subgraph(
        run_graphs(workspace, run),
        genes,
        datasets=args.datasets,
        max_neighbours=args.max_neighbours,
        max_nodes=args.max_nodes,
        max_edges=args.max_edges,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "nodes": view.nodes.to_dict(orient="records"),
                    "edges": view.edges.to_dict(orient="records"),
                    "merged": view.merged.to_dict(orient="records"),
                    "notes": view.notes,
                },
                indent=2,
            )
        )
    else:
        print(view.nodes.drop(columns=["x", "y"]).to_string(index=False))
        print()
        print(view.merged.to_string(index=False))
        for note in view.notes:
            print(f"note: {note}")
    return 0


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    _add_workspace(parser)
    parser.add_argument("--run", required=True, help="run name")
    parser.add_argument("--output", "-o", required=True, type=Path, help="the .html file to write")
    parser.add_argument(
        "--resolution", type=float, help="Leiden resolution of the clusters (default: the run's)"
    )


def run_report(args: argparse.Namespace) -> int:
    import time

    from .report import write_report

    workspace = open_workspace(args, create=False)
    start = time.perf_counter()
    path = write_report(workspace, args.run, args.output, args.resolution)
    size = path.stat().st_size / 2**20
    print(f"wrote {path} ({size:.1f} MB, {time.perf_counter() - start:.1f} s)")
    return 0


def add_libraries_arguments(parser: argparse.ArgumentParser) -> None:
    _add_workspace(parser)
    parser.add_argument(
        "--fetch", nargs="+", metavar="LIBRARY", help="download Enrichr libraries into the cache"
    )
    parser.add_argument("--json", action="store_true")


def run_libraries(args: argparse.Namespace) -> int:
    from .analysis.libraries import fetch_enrichr_library, list_libraries

    workspace = open_workspace(args, create=False)
    for name in args.fetch or []:
        library = fetch_enrichr_library(workspace, name)
        print(f"{library.name}: {library.path}", file=sys.stderr)
    rows = [
        {"name": lib.name, "source": lib.source, "path": str(lib.path)}
        for lib in list_libraries(workspace)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("No gene-set libraries found: give a .gmt file or fetch an Enrichr library.")
    else:
        for row in rows:
            print(f"{row['name']:45s} {row['source']:10s} {row['path']}")
    return 0


# -------------------------------------------------------------------------- app
def add_app_arguments(parser: argparse.ArgumentParser) -> None:
    _add_workspace(parser)
    parser.add_argument("--port", type=int, help="port to serve on (default 8501)")


def run_app(args: argparse.Namespace) -> int:
    from .dashboard import run_app as run_dashboard

    return run_dashboard(args.workspace, args.port)


Command = tuple[
    str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]
]
COMMANDS: list[Command] = [
    ("import", "import count data into the workspace", add_import_arguments, run_import),
    ("list", "list the datasets of the workspace", add_list_arguments, run_list),
    (
        "delete",
        "delete datasets (and their cached graphs) from the workspace",
        add_delete_arguments,
        run_delete,
    ),
    (
        "build-graphs",
        "build the gene co-expression graph of each dataset",
        add_build_graphs_arguments,
        run_build_graphs,
    ),
    ("train", "train MuSe-GNN on the workspace's graphs", add_train_arguments, run_train),
    (
        "evaluate",
        "score a run and baselines with the paper's metrics and gene-set measures",
        add_evaluate_arguments,
        run_evaluate,
    ),
    (
        "enrich",
        "gene-set enrichment of a cluster or gene list of a run",
        add_enrich_arguments,
        run_enrich,
    ),
    (
        "neighbors",
        "genes nearest to a gene in a run's embedding",
        add_neighbors_arguments,
        run_neighbors,
    ),
    (
        "clusters",
        "functional gene groups of a run: Leiden clusters and their composition",
        add_clusters_arguments,
        run_clusters,
    ),
    (
        "subgraph",
        "the co-expression subgraph around a gene or cluster, per dataset",
        add_subgraph_arguments,
        run_subgraph,
    ),
    (
        "libraries",
        "list gene-set libraries (and fetch Enrichr ones into the cache)",
        add_libraries_arguments,
        run_libraries,
    ),
    (
        "report",
        "a self-contained HTML report of a run (datasets, labelled clusters, terms, benchmark)",
        add_report_arguments,
        run_report,
    ),
    ("demo", "fill an empty workspace with the demo datasets", add_demo_arguments, run_demo),
    ("app", "start the dashboard in a browser (from a checkout)", add_app_arguments, run_app),
]


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m musegnn_core",
        description="MuSe-GNN Studio: joint gene embeddings across datasets.",
    )
    parser.add_argument("--version", action="version", version=f"musegnn-studio {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True
    for name, help_text, add_arguments, run in COMMANDS:
        command = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(command)
        command.set_defaults(handler=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except MuseGNNError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("error: interrupted; nothing half-written was kept.", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head`: stop quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the flush at exit
        return 0
    except OSError as exc:  # disk full, permission denied, vanished folder...
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:
        print("error: out of memory; try fewer or smaller datasets.", file=sys.stderr)
        return EXIT_USAGE

"""The selection the explore pages share: run, resolution, cluster, gene and gene set.

It lives in ``st.session_state`` (the truth while a session lasts, so moving between
pages keeps it) and is mirrored to the address bar's query parameters, so that a copied
address reopens the same view for a colleague::

    ?run=q60&res=1&cluster=3&gene=CD74&genes=A,B,C&color=cluster

Values read from an address are checked twice: their form when the session adopts them
(a run name, a resolution in range, a cluster number, gene symbols), then against the
run (does the run, cluster or gene exist?). Anything unknown is dropped with a warning
that says what was shown instead; it never stops the page.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anndata as ad
import pandas as pd
import streamlit as st

from musegnn_core.analysis.clusters import check_cluster_label, check_resolution
from musegnn_core.analysis.missing import suggest_genes
from musegnn_core.errors import MuseGNNError, ValidationError
from musegnn_core.paths import default_workspace
from musegnn_core.runs import Run, check_run_name, list_runs, run_folder
from musegnn_core.workspace import Workspace
from pages.ui import loaders
from pages.ui.common import run_safely, safe_text

STATE = "selection"
#: The run the frame's picker chose for this script run (its name; None when there is no
#: usable run): written by :func:`run_picker` (app.py), read by :func:`picked_run` (pages).
PICKED_RUN = "picked_run"
#: The run picker's widget key (the sidebar's "Run" box, drawn by the frame).
RUN_PICKER = "run_picker"
_ADOPTED = "_selection_adopted_url"
_WARNINGS = "_selection_warnings"
_SYNCED = "_synced_"
_ERROR = "_bind_error_"
#: The query parameters this module owns.
URL_KEYS = ("run", "res", "cluster", "gene", "genes", "color")
#: What the UMAP can be coloured by (the Embedding page's "Colour by"; kept in the link).
COLOR_KEYS = ("dataset", "tissue", "modality", "species", "cluster", "in_all", "n_datasets")
#: Larger gene sets stay in the session but are left out of the address (too long to share).
MAX_URL_GENES = 100
#: At most this many genes are read from an address.
MAX_GENES = 5000
TRAIN_PAGE = "pages/2_Train.py"
_GENE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
_SPLIT = re.compile(r"[\s,;]+")
_EMPTY = {
    "run": None,
    "res": None,
    "cluster": None,
    "gene": None,
    "genes": [],
    "genes_source": "",
    "color": None,
}


# ----------------------------------------------------------------------------- state
def state() -> dict:
    """The session's selection; adopts the address's values the first time it is read."""
    if STATE not in st.session_state:
        st.session_state[STATE] = dict(_EMPTY)
    if not st.session_state.get(_ADOPTED):
        st.session_state[_ADOPTED] = True
        adopted, problems = parse_url(st.query_params.to_dict())
        st.session_state[STATE].update(adopted)
        _warn_later(problems)
    return st.session_state[STATE]


def parse_url(params: dict[str, str]) -> tuple[dict, list[str]]:
    """The selection a query string asks for (checked for form only) and what was refused."""
    found: dict[str, Any] = {}
    problems: list[str] = []
    if params.get("run"):
        try:
            found["run"] = check_run_name(params["run"].strip())
        except MuseGNNError as exc:
            problems.append(f"The link's run was ignored: {exc}")
    if params.get("res"):
        try:
            found["res"] = check_resolution(params["res"].strip())
        except MuseGNNError as exc:
            problems.append(f"The link's resolution was ignored: {exc} Using the run's own.")
    if params.get("cluster"):
        try:
            found["cluster"] = check_cluster_label(params["cluster"])
        except MuseGNNError as exc:
            problems.append(f"The link's cluster was ignored: {exc}")
    if params.get("gene"):
        gene = params["gene"].strip()
        if _GENE.match(gene):
            found["gene"] = gene
        else:
            problems.append(f"The link's gene {gene[:40]!r} is not a gene symbol; ignored.")
    if params.get("color"):
        color = params["color"].strip()
        if color in COLOR_KEYS:
            found["color"] = color
        else:
            problems.append(
                f"The link's colouring {color[:40]!r} is not one of {', '.join(COLOR_KEYS)}; "
                "colouring by dataset."
            )
    if params.get("genes"):
        genes, bad = split_genes(params["genes"])
        if bad:
            problems.append(
                f"{len(bad)} entries of the link's gene list are not gene symbols and were "
                f"ignored (e.g. {bad[0][:40]!r})."
            )
        if len(genes) > MAX_GENES:
            problems.append(f"The link's gene list was cut to its first {MAX_GENES} genes.")
            genes = genes[:MAX_GENES]
        if genes:
            found["genes"] = genes
            found["genes_source"] = "a shared link"
    return found, problems


def split_genes(text: str) -> tuple[list[str], list[str]]:
    """Gene symbols in ``text`` (commas, spaces, semicolons or new lines), and rejected tokens."""
    tokens = [t for t in _SPLIT.split(text or "") if t]
    genes = list(dict.fromkeys(t for t in tokens if _GENE.match(t)))
    return genes, [t for t in tokens if not _GENE.match(t)]


def set_selection(**changes: Any) -> dict:
    """Change the selection; a new run resets the resolution and cluster, a new
    resolution resets the cluster (cluster numbers differ between resolutions)."""
    current = state()
    if "run" in changes and current["run"] is not None and changes["run"] != current["run"]:
        current.update(res=None, cluster=None)
    if "res" in changes and changes["res"] != current["res"]:
        current["cluster"] = None
    if "genes" in changes:
        changes["genes"] = list(dict.fromkeys(changes["genes"] or []))
        changes.setdefault("genes_source", "")
    current.update(changes)
    return current


def clear_selection() -> None:
    """Forget cluster, gene and gene set (keeps the run and resolution)."""
    set_selection(cluster=None, gene=None, genes=[], genes_source="")


def url_params(selection: dict) -> dict[str, str]:
    """The query parameters that describe ``selection``."""
    params = {}
    if selection.get("run"):
        params["run"] = selection["run"]
    if selection.get("res") is not None:
        params["res"] = f"{selection['res']:g}"
    if selection.get("cluster") is not None:
        params["cluster"] = str(selection["cluster"])
    if selection.get("gene"):
        params["gene"] = selection["gene"]
    genes = selection.get("genes") or []
    if genes and len(genes) <= MAX_URL_GENES:
        params["genes"] = ",".join(genes)
    if selection.get("color"):
        params["color"] = selection["color"]
    return params


def write_url() -> None:
    """Mirror the selection into the address bar (only the keys that changed)."""
    wanted = url_params(state())
    for key in URL_KEYS:
        if key in wanted:
            if st.query_params.get(key) != wanted[key]:
                st.query_params[key] = wanted[key]
        elif key in st.query_params:
            del st.query_params[key]


def _warn_later(messages: Sequence[str]) -> None:
    if messages:
        st.session_state.setdefault(_WARNINGS, []).extend(messages)


def show_warnings() -> None:
    for message in st.session_state.pop(_WARNINGS, []):
        st.warning(safe_text(message), icon=":material/link_off:")


# ----------------------------------------------------------------------------- widgets
def bind(
    key: str,
    field: str,
    check: Callable[[Any], Any] | None = None,
    to_widget: Callable[[Any], Any] | None = None,
) -> dict:
    """Keyword arguments that tie a widget to one field of the selection.

    Before the widget is drawn it is set to the selection's value whenever the selection
    changed elsewhere (another page, a click on a plot); a change the user makes goes
    into the selection through ``on_change``, before the page runs, so everything on the
    page agrees. ``check`` turns the widget's value into the field's value and may raise
    ``MuseGNNError``: the message is kept for :func:`bind_error`, the selection unchanged.
    ``to_widget`` turns the field's value into the widget's (e.g. None into "").
    """
    current = state()[field]
    if key not in st.session_state or st.session_state.get(_SYNCED + key) != current:
        st.session_state[key] = to_widget(current) if to_widget else current
        st.session_state[_SYNCED + key] = current
        st.session_state.pop(_ERROR + key, None)
    return {"key": key, "on_change": _on_change, "args": (key, field, check)}


def _on_change(key: str, field: str, check: Callable[[Any], Any] | None) -> None:
    value = st.session_state[key]
    st.session_state.pop(_ERROR + key, None)
    if check is not None:
        try:
            value = check(value)
        except MuseGNNError as exc:
            st.session_state[_ERROR + key] = str(exc)
            return
    set_selection(**{field: value})
    st.session_state[_SYNCED + key] = value


def bind_error(key: str) -> None:
    """Show the error of the last rejected value of a bound widget, if any."""
    message = st.session_state.get(_ERROR + key)
    if message:
        st.error(safe_text(message))


def resolve_gene(text: str, genes: Sequence[str]) -> str | None:
    """The gene a user typed, as named in the run: exact, else the one case-insensitive match.

    Empty text means no gene. Unknown text raises ValidationError with suggestions.
    """
    text = (text or "").strip()
    if not text:
        return None
    known = set(genes)
    if text in known:
        return text
    by_case = [g for g in genes if g.lower() == text.lower()]
    if len(by_case) == 1:
        return by_case[0]
    # Only related genes of the run (same symbol in another case, same symbol family),
    # never look-alike strangers (MKI67 is not "like" SMIM7).
    hints = [s["gene"] for s in suggest_genes(text, genes)]
    hint = f" Did you mean {', '.join(hints)}?" if hints else ""
    raise ValidationError(
        f"Gene {text[:40]!r} is not in this run's embedding (names are human symbols; mouse "
        f"genes appear under their human ortholog).{hint}"
    )


# ----------------------------------------------------------------------------- runs
def usable_runs(ws: Workspace) -> list[Run]:
    """Completed runs that have an embedding, newest first."""
    return [
        r
        for r in list_runs(ws)
        if r.embeddings_path.exists() and r.status().get("state") == "completed"
    ]


def run_label(run: Run) -> str:
    config = run.config()
    train = config.get("train", {})
    created = str(config.get("created_at", ""))[:16].replace("T", " ")
    n = len(config.get("datasets", []))
    return f"{run.name} · {train.get('preset', '?')}, {train.get('epochs', '?')} epochs, {n} datasets · {created}"


def no_run_message(ws: Workspace) -> None:
    st.info(
        "No trained run yet: the explore pages need a completed training run with an "
        "embedding. Train one on the **Train** page (or with `python -m musegnn_core train`).",
        icon=":material/model_training:",
    )
    running = [r for r in list_runs(ws) if r.status().get("state") == "running"]
    for run in running:
        status = run.status()
        st.caption(
            f"Run {safe_text(run.name)} is training (epoch {status.get('epoch', '?')} of "
            f"{status.get('epochs', '?')}); it appears here when it completes."
        )
    if train_page_exists():
        st.page_link(TRAIN_PAGE, label="Go to Train", icon=":material/model_training:")


def train_page_exists() -> bool:
    return (Path(__file__).resolve().parent.parent / Path(TRAIN_PAGE).name).is_file()


# ----------------------------------------------------------------------------- context
@dataclass
class Explore:
    """What an explore page works on: the run, its embedding and clusters, the selection."""

    ws: Workspace
    run: Run
    key: loaders.RunKey
    embedding: ad.AnnData
    resolution: float
    trained_resolution: float
    labels: pd.Series

    @property
    def selection(self) -> dict:
        return state()

    @property
    def cluster(self) -> str | None:
        return state()["cluster"]

    @property
    def gene(self) -> str | None:
        return state()["gene"]

    @property
    def genes(self) -> list[str]:
        return state()["genes"]

    def clusters(self) -> list[str]:
        from pages.ui.theme import sort_categories

        return sort_categories(self.labels.unique())

    def gene_list(self) -> list[str]:
        return loaders.gene_list(self.key)


def explore_page(title: str) -> tuple[Workspace, Explore]:
    """The head of every explore page: title, workspace, banner and the run context.

    The run itself is picked by the frame (app.py's :func:`run_picker`, in the sidebar);
    the page only reads it. Stops the script (after saying why) when there is no
    workspace or no usable run.
    """
    from pages.ui.common import page_head

    ws = page_head(title)
    ctx = explore(ws)
    if ctx is None:
        st.stop()
    return ws, ctx


# ----------------------------------------------------------------------------- the frame's picker
def run_picker() -> str | None:
    """The run picker of the frame (app.py calls it on the explore pages, before the page).

    Draws the sidebar's "Run" box (completed runs with an embedding, newest first, the
    newest chosen by default; a run asked for by the link or the session that is not
    usable falls back to the newest with a warning the page shows) and keeps the chosen
    run's name under :data:`PICKED_RUN` for the page; None (and no box) when there is none.
    A workspace that cannot be opened draws nothing: the page's head says why.
    """
    selection = state()
    try:
        runs = usable_runs(Workspace.open(default_workspace(), create=False))
    except (MuseGNNError, OSError):
        runs = []
    picked = None
    if runs:
        names = [r.name for r in runs]
        if selection["run"] not in names:
            if selection["run"] is not None:
                _warn_later(
                    [
                        f"Run {selection['run']!r} is not a completed run with an embedding in "
                        f"this workspace; showing {names[0]!r}."
                    ]
                )
            set_selection(run=names[0])
        labels_by_name = {r.name: run_label(r) for r in runs}
        st.sidebar.selectbox(
            "Run",
            names,
            format_func=labels_by_name.get,
            help="Completed training runs with an embedding, newest first.",
            **bind(RUN_PICKER, "run"),
        )
        picked = state()["run"]
    st.session_state[PICKED_RUN] = picked
    return picked


def forget_picked_run() -> None:
    """On pages that explore no run (the frame draws no picker there)."""
    st.session_state.pop(PICKED_RUN, None)


def picked_run(ws: Workspace) -> Run | None:
    """The run the frame's picker chose for this page; None when there is no usable run.

    The page takes the frame's pick of this script run. A page run without app.py draws
    the same picker itself, in the sidebar: a server whose first visitor opens a page's
    address runs the pages alone (the old way of a ``pages`` folder) until app.py has run
    once and its ``st.navigation`` turns that off.
    """
    if PICKED_RUN not in st.session_state:
        run_picker()
    name = st.session_state.pop(PICKED_RUN)
    return run_folder(ws, name) if name else None


def explore(ws: Workspace) -> Explore | None:
    """Load the picked run (:func:`picked_run`), check the selection against it; None if
    there is no run.

    Shows why nothing can be shown (no run, unreadable embedding) before returning None.
    """
    run = picked_run(ws)
    if run is None:
        show_warnings()
        no_run_message(ws)
        return None
    key = loaders.run_key(ws, run)
    embedding = run_safely(lambda: loaders.embedding(key), "Loading the run")
    if embedding is None:
        return None
    trained = loaders.trained_resolution(run)
    if state()["res"] is None:
        state()["res"] = trained
    resolution = state()["res"]
    labels = run_safely(lambda: loaders.labels(key, resolution), "Clustering")
    if labels is None:
        return None
    ctx = Explore(ws, run, key, embedding, resolution, trained, labels)
    _check_against_run(ctx)
    show_warnings()
    write_url()
    sidebar_summary(ctx)
    return ctx


def _check_against_run(ctx: Explore) -> None:
    selection = state()
    problems = []
    cluster = selection["cluster"]
    if cluster is not None and cluster not in set(ctx.labels):
        clusters = ctx.clusters()
        problems.append(
            f"There is no cluster {cluster} at resolution {ctx.resolution:g} "
            f"(clusters {clusters[0]} to {clusters[-1]}); no cluster is selected."
        )
        selection["cluster"] = None
    genes = ctx.gene_list()
    known = set(genes)
    gene = selection["gene"]
    if gene is not None and gene not in known:
        try:
            selection["gene"] = resolve_gene(gene, genes)
        except MuseGNNError as exc:
            problems.append(str(exc))
            selection["gene"] = None
    if selection["genes"]:
        missing = [g for g in selection["genes"] if g not in known]
        if missing:
            problems.append(
                f"{len(missing)} of the {len(selection['genes'])} genes of the gene set are not "
                f"in run {ctx.run.name} and were dropped (e.g. {', '.join(missing[:5])})."
            )
            selection["genes"] = [g for g in selection["genes"] if g in known]
    _warn_later(problems)


def sidebar_summary(ctx: Explore) -> None:
    """The selection at a glance, in the sidebar of every explore page."""
    selection = state()
    with st.sidebar:
        lines = [f"Resolution **{ctx.resolution:g}** ({ctx.labels.nunique()} clusters)"]
        if selection["cluster"] is not None:
            from pages.ui import programs

            label = programs.titles(ctx.key, ctx.resolution).get(selection["cluster"], "")
            label = label.split(" · ", 1)[1] if " · " in label else ""
            lines.append(
                f"Cluster **{selection['cluster']}**" + (f" · {safe_text(label)}" if label else "")
            )
        if selection["gene"]:
            lines.append(f"Gene **{safe_text(selection['gene'])}**")
        if selection["genes"]:
            source = (
                f" from {safe_text(selection['genes_source'])}" if selection["genes_source"] else ""
            )
            lines.append(f"Gene set: **{len(selection['genes'])}** genes{source}")
        st.markdown("**Selection**  \n" + "  \n".join(lines))
        if len(selection["genes"]) > MAX_URL_GENES:
            st.caption(
                f"The gene set has more than {MAX_URL_GENES} genes, so the page address does "
                "not include it; download it to share it."
            )
        st.button(
            "Clear selection",
            key="clear_selection",
            on_click=clear_selection,
            disabled=not (
                selection["cluster"] is not None or selection["gene"] or selection["genes"]
            ),
            help="Forget the cluster, gene and gene set (keeps the run and resolution).",
        )
        st.caption("Copy the page address to share this view.")

"""Benchmark: the run against PCA, a graph autoencoder and a random embedding on the same graphs."""

import numpy as np
import pandas as pd
import streamlit as st

from musegnn_core.analysis.evaluate import BASELINES, default_gene_set_paths
from musegnn_core.analysis.libraries import list_libraries
from musegnn_core.analysis.metrics import METRIC_LABELS, METRICS
from musegnn_core.analysis.reading import benchmark_reading, metric_reading
from musegnn_core.jobs import evaluation_status, read_log, start_evaluation
from musegnn_core.workspace import Workspace
from pages.ui import figures, loaders, theme
from pages.ui.common import flash, run_safely, safe_text
from pages.ui.selection import explore_page

MEAN = "mean_of_six"
MEAN_DEFINED = "mean_of_defined"
LABELS = {
    **METRIC_LABELS,
    MEAN: "Mean of six",
    MEAN_DEFINED: "Mean of the defined metrics",
}

ws, ctx = explore_page("Benchmark")
run = ctx.run.name

st.caption(
    "The paper's six metrics (higher is better, each in [0, 1]) for this run and for "
    "baselines built on the same co-expression graphs: per-dataset PCA of the residuals, a "
    "graph autoencoder (GAE) and a random embedding; plus the gene-set measures per library, "
    "where two no-learning baselines set the bar: the co-expression of two genes, and the "
    "agreement of their co-expression profiles (which also compares genes across datasets)."
)


def row_label(key: str, wrap: bool = False) -> str:
    if key in LABELS:
        return LABELS[key]
    kind, _, library = key.partition(":")
    base, _, held = kind.partition("[")
    names = {
        "coherence": "Gene-set coherence AUROC",
        "prediction": "Function prediction AUROC",
        "coherence_within": "Coherence within datasets",
        "coherence_within_matched": "Coherence within datasets, gene-matched",
        "coherence_per_dataset": "Coherence per dataset",
        "coherence_unified": "Unified coherence",
        "coherence_unified_matched": "Unified coherence, gene-matched",
        "coherence_within_per_set": "Coherence within datasets, each set weighing the same",
        "coherence_unified_per_set": "Unified coherence, each set weighing the same",
        "coherence_within_by_set_size": "Coherence within datasets",
        "coherence_unified_by_set_size": "Unified coherence",
    }
    held = held.rstrip("]")
    if base.endswith("_by_set_size"):
        pairs = f", pairs sharing a set of {held} genes"
    elif held == "0":
        pairs = ", pairs no dataset holds together"
    else:
        pairs = f", pairs {held} datasets hold"
    name = names.get(base, base) + (pairs if held else "")
    return f"{name}{'<br>' if wrap else ' '}({library})" if library else key


evaluation = loaders.evaluation(ctx.run)

with st.expander("Evaluate this run", expanded=evaluation is None):
    libraries = list_libraries(ws)
    by_path = {str(lib.path): lib for lib in libraries}
    defaults = [str(p) for p in default_gene_set_paths() if str(p) in by_path] or [
        str(lib.path) for lib in libraries if lib.source == "simulated"
    ]
    b1, b2 = st.columns(2)
    baselines = b1.multiselect(
        "Baselines",
        list(BASELINES),
        default=list(BASELINES),
        key="bench_baselines",
        format_func=theme.method_label,
    )
    gene_sets = b2.multiselect(
        "Gene-set libraries for the functional measures",
        list(by_path),
        default=defaults,
        format_func=lambda p: by_path[p].name,
        key="bench_libraries",
    )
    st.caption(
        "Takes about 2 minutes on the eight shared datasets (the GAE baseline trains a small "
        "model)."
        + (" The new result replaces the stored evaluation." if evaluation is not None else "")
    )
    go = st.button(
        "Run the evaluation",
        type="primary",
        key="bench_go",
        disabled=evaluation_status(ws, run)["state"] == "running",
    )
if go and run_safely(
    lambda: start_evaluation(ws, run, baselines=tuple(baselines), gene_set_paths=gene_sets),
    "Starting the evaluation",
):
    flash(f"Evaluating {safe_text(run)} in the background; it goes on if you leave this page.")
    st.rerun()


@st.fragment(run_every=2.0)
def evaluation_panel(root: str, name: str, started: str) -> None:
    """An evaluation running in the background (started here or before), until it ends."""
    here = Workspace(root)
    state = evaluation_status(here, name)
    if state["state"] != "running":
        st.rerun()  # the whole page: the new table, or the reason it failed
    with st.status(f"Evaluating {name} (started {started[11:16]})...", expanded=True):
        st.caption("It runs in the background: leaving this page does not stop it.")
        st.code(read_log(here, name, lines=8, kind="evaluate") or "(starting)", language=None)


evaluating = evaluation_status(ws, run)
if evaluating["state"] == "running":
    evaluation_panel(str(ws.root), run, evaluating["started_at"] or "")
elif evaluating["state"] == "failed":
    st.error(f"The last evaluation of {safe_text(run)} failed: {safe_text(evaluating['error'])}")

if evaluation is None:
    st.info(
        f"Run {safe_text(run)} has not been evaluated yet. Evaluate it above (or with "
        f"`python -m musegnn_core evaluate --run {safe_text(run)}`)."
    )
    st.stop()

table = loaders.evaluation_table(evaluation)
six = [m for m in METRICS if m in table.index]
undefined = {
    m: [theme.method_label(c) for c in table.columns if not np.isfinite(table.loc[m, c])]
    for m in six
}
undefined = {m: methods for m, methods in undefined.items() if methods}
if undefined and MEAN in table.index:
    # The mean of six is undefined as soon as one metric is; show the mean of the rest too.
    defined_mean = table.loc[six].mean(axis=0, skipna=True)
    position = list(table.index).index(MEAN) + 1
    table = pd.concat(
        [table.iloc[:position], defined_mean.to_frame(MEAN_DEFINED).T, table.iloc[position:]]
    )

st.caption(
    f"Evaluated {safe_text(str(evaluation.get('created_at', ''))[:16].replace('T', ' '))} in "
    f"{evaluation.get('seconds', float('nan')):.0f} s (seed {evaluation.get('seed', 0)})."
)
display = table.rename(index=row_label, columns=theme.method_label)


def highlight(row: pd.Series) -> list[str]:
    strong = row.name in (LABELS[MEAN], LABELS[MEAN_DEFINED])
    return ["background-color: #FDE68A; font-weight: bold" if strong else "" for _ in row]


shown = display.map(lambda v: f"{v:.3f}" if np.isfinite(v) else "n/a")
st.dataframe(
    shown.style.apply(highlight, axis=1).set_properties(**{"text-align": "right"}),
    width="stretch",
    key="benchmark_table",
)
loaders.csv_download(
    table,
    "Download the evaluation (CSV)",
    f"{run}-evaluation.csv",
    "download_benchmark",
    index=True,
)

rules = evaluation.get("common_gene_rule") or []
st.markdown(
    "**Common-gene rule.** ASW, iLISI and graph connectivity are scored on the genes present "
    "in every dataset of the run; when no gene is in all of them, on the genes present in at "
    "least half of the datasets. This evaluation used: "
    f"**{safe_text('; '.join(rules) or 'not recorded')}**."
)
if undefined:
    st.warning(
        "Undefined metrics: "
        + "; ".join(f"{LABELS.get(m, m)} for {', '.join(ms)}" for m, ms in undefined.items())
        + ". An undefined metric makes the mean of six undefined (as in the paper's reference), "
        "so the mean of the defined metrics is shown beside it. ASW is undefined when no "
        "cluster holds the common genes of two or more datasets."
    )

st.subheader("How to read this table")
for note in benchmark_reading(table):
    st.info(note, icon=":material/lightbulb:")
st.dataframe(
    pd.DataFrame(
        {
            "score": [row_label(k) for k in table.index],
            "what it rewards": [metric_reading(str(k)) for k in table.index],
        }
    ),
    hide_index=True,
    width="stretch",
    key="benchmark_reading",
    column_config={"what it rewards": st.column_config.TextColumn(width="large")},
)

mean_rows = [MEAN, MEAN_DEFINED] if MEAN_DEFINED in table.index else [MEAN]
st.plotly_chart(
    figures.benchmark_bars(
        table, [*six, *mean_rows], {k: row_label(k) for k in table.index}, highlight=mean_rows[-1]
    ),
    key="benchmark_bars",
    config=theme.figure_config(f"{run}-benchmark"),
)
functional = [k for k in table.index if ":" in k and "[" not in k]  # bins stay in the table
if functional:
    st.subheader("Gene-set measures")
    st.caption(
        "Coherence: AUROC of embedding similarity for gene pairs sharing a set. Prediction: "
        "cross-validated kNN prediction of set membership. 0.5 is chance."
    )
    st.plotly_chart(
        figures.benchmark_bars(table, functional, {k: row_label(k, wrap=True) for k in functional}),
        key="benchmark_functional",
        config=theme.figure_config(f"{run}-benchmark-genesets"),
    )

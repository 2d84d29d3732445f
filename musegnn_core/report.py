"""A lab-meeting report of a run: one self-contained HTML file that opens offline.

Datasets and settings, the UMAP coloured by labelled cluster (labels at the cluster
centres), the clusters with their labels and hub genes, the top enriched terms of each
cluster (library named), and the benchmark table with its plain-language reading. The
plotly library is inlined once and the figures are embedded, so the file asks no server
for anything.
"""

from __future__ import annotations

import html
import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from .storage import atomic_write_text
from .workspace import now_iso

#: Above this many points the UMAP is drawn with WebGL (SVG is slow to draw then).
WEBGL_FROM = 20000
FONT = {"size": 14, "color": "#222222"}
METHOD_NAMES = {
    "musegnn": "MuSe-GNN",
    "coexpression": "Co-expression",
    "pca": "PCA",
    "gae": "GAE",
    "random": "Random",
}
#: Up to this many clusters, the UMAP names each cluster at its centre; beyond, numbers only.
MAX_NAMED_CENTRES = 12
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       margin: 2rem auto; max-width: 1200px; padding: 0 1rem; font-size: 16px; }
h1 { font-size: 1.8rem; margin-bottom: .2rem; } h2 { margin-top: 2.2rem; }
.meta { color: #444; } table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { border-bottom: 1px solid #d0d4d9; padding: .35rem .5rem; text-align: left;
         vertical-align: top; } th { background: #f2f4f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: .9em; height: .9em; border-radius: 2px;
          margin-right: .35em; vertical-align: -0.1em; }
.note { background: #f6f8fa; border-left: 4px solid #2A6F97; padding: .6rem .9rem; }
"""


def _e(value) -> str:
    return html.escape(str(value))


def _wrap(text: str, width: int = 28) -> str:
    return "<br>".join(textwrap.wrap(str(text), width)) or str(text)


def _table(frame: pd.DataFrame, numeric: tuple[str, ...] = (), escape: bool = True) -> str:
    """An HTML table; ``escape=False`` when the cells are already escaped HTML."""
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for column in frame.columns:
            css = ' class="num"' if column in numeric else ""
            value = _e(row[column]) if escape else row[column]
            cells.append(f"<td{css}>{value}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def umap_by_cluster(embedding, labels: pd.Series, titles: dict[str, str]):
    """The UMAP coloured by cluster, with each cluster's number and label at its centre."""
    import plotly.graph_objects as go

    from .colors import cluster_colors

    umap = np.asarray(embedding.obsm["X_umap"], dtype=float)
    values = np.asarray(labels, dtype=str)
    genes = embedding.obs["gene"].astype(str).to_numpy(dtype=object)
    datasets = embedding.obs["dataset"].astype(str).to_numpy(dtype=object)
    colors = cluster_colors(values)
    trace = go.Scattergl if len(values) >= WEBGL_FROM else go.Scatter
    fig = go.Figure()
    for cluster, color in colors.items():
        rows = np.flatnonzero(values == cluster)
        title = titles.get(cluster, f"cluster {cluster}")
        fig.add_trace(
            trace(
                x=umap[rows, 0],
                y=umap[rows, 1],
                mode="markers",
                name=_wrap(title, 40),
                marker={"size": 4, "color": color, "opacity": 0.75},
                text="<b>" + genes[rows] + "</b><br>" + datasets[rows],
                hovertemplate="%{text}<br>" + html.escape(title) + "<extra></extra>",
            )
        )
    for cluster in colors:
        rows = np.flatnonzero(values == cluster)
        x, y = np.median(umap[rows], axis=0)
        # The number, and the first term when a term names the cluster (hub-gene names are
        # long and pile up; the legend and the table have them).
        label = titles.get(cluster, "").split(" · ")
        short = label[1].split(" / ")[0] if len(label) > 2 else ""
        short = "" if short.startswith("hub genes") or len(colors) > MAX_NAMED_CENTRES else short
        fig.add_annotation(
            x=x,
            y=y,
            text=f"<b>{_e(cluster)}</b> {_wrap(_e(short), 22)}" if short else f"<b>{cluster}</b>",
            showarrow=False,
            font={"size": 14, "color": "#111111"},
            bgcolor="rgba(255,255,255,0.75)",
        )
    fig.update_layout(
        height=760,
        font=FONT,
        plot_bgcolor="white",
        paper_bgcolor="white",
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"title": {"text": "cluster"}, "itemsizing": "constant", "font": FONT},
    )
    fig.update_xaxes(title="UMAP 1", showgrid=False, zeroline=False, showticklabels=False)
    fig.update_yaxes(title="UMAP 2", showgrid=False, zeroline=False, showticklabels=False)
    return fig


def build_report(
    workspace, run_name: str, resolution: float | None = None, library_paths=None
) -> str:
    """The report of ``run_name`` as one HTML document (string); clusters are named with
    ``library_paths`` (default: the run's default libraries)."""
    from .analysis.annotate import cluster_title, run_annotations, short_library
    from .analysis.clusters import cluster_summary, run_clustering
    from .analysis.evaluate import load_embedding
    from .analysis.metrics import METRIC_LABELS
    from .analysis.reading import benchmark_reading, metric_reading
    from .colors import cluster_colors
    from .runs import get_run

    run = get_run(workspace, run_name)
    config = run.config()
    embedding = load_embedding(run)
    clustering = run_clustering(run, embedding, resolution)
    annotations = run_annotations(workspace, run, clustering.resolution, library_paths)
    titles = annotations.titles()
    summary = cluster_summary(embedding, clustering.labels)
    colors = cluster_colors(clustering.labels)

    parts = [f"<h1>MuSe-GNN run {_e(run.name)}</h1>"]
    train = config.get("train", {})
    parts.append(
        f"<p class='meta'>{_e(len(config.get('datasets', [])))} datasets · "
        f"{embedding.n_obs:,} (gene, dataset) rows of "
        f"{embedding.obs['gene'].nunique():,} genes · {len(summary)} clusters at Leiden "
        f"resolution {clustering.resolution:g} · preset {_e(train.get('preset', '?'))}, "
        f"{_e(train.get('epochs', '?'))} epochs · trained {_e(config.get('created_at', ''))}"
        f" on {_e(config.get('device_name', config.get('device', '?')))} · report "
        f"{_e(now_iso())}</p>"
    )

    metas = {m.name: m for m in workspace.datasets()}
    rows = []
    for name in config.get("datasets", []):
        meta = metas.get(name)
        n_rows = int((embedding.obs["dataset"].astype(str) == name).sum())
        rows.append(
            {
                "dataset": name,
                "species": getattr(meta, "species", ""),
                "tissue": getattr(meta, "tissue", ""),
                "modality": getattr(meta, "modality", ""),
                "technology": getattr(meta, "technology", ""),
                "cells": getattr(meta, "n_cells", ""),
                "genes embedded": n_rows,
            }
        )
    parts.append("<h2>Datasets</h2>" + _table(pd.DataFrame(rows), ("cells", "genes embedded")))
    settings = {k: v for k, v in train.items() if not isinstance(v, dict)}
    for group in ("model", "graph"):
        settings |= {f"{group}.{k}": v for k, v in (train.get(group) or {}).items()}
    settings_frame = pd.DataFrame({"setting": list(settings), "value": list(settings.values())})
    parts.append("<h2>Settings</h2>" + _table(settings_frame))

    figure = umap_by_cluster(embedding, clustering.labels, titles)
    parts.append("<h2>UMAP by labelled cluster</h2>")
    parts.append(
        "<p>One point per gene and dataset. Clusters are named by their most enriched gene "
        f"sets ({_e(', '.join(annotations.libraries) or 'no library')}), or by their hub "
        "genes when no set is enriched (adjusted p &lt; 0.05, 2+ genes).</p>"
    )
    parts.append(
        figure.to_html(
            full_html=False,
            include_plotlyjs=True,
            config={"displaylogo": False, "responsive": True},
            div_id="umap",
        )
    )

    records = {c["cluster"]: c for c in annotations.clusters}
    cluster_rows = []
    for row in summary.itertuples():
        record = records.get(str(row.cluster), {})
        swatch = f"<span class='swatch' style='background:{colors[str(row.cluster)]}'></span>"
        cluster_rows.append(
            {
                "cluster": f"{swatch}{_e(row.cluster)}",
                "label": _e(record.get("label", "")),
                "hub genes (co-expression degree)": _e(
                    ", ".join(
                        f"{h['gene']} ({h['coexpression_degree']})"
                        for h in record.get("hub_genes", [])
                    )
                ),
                "genes": row.n_genes,
                "datasets": _e(row.datasets),
                "tissues": _e(row.tissues),
                "species": _e(row.species),
            }
        )
    frame = pd.DataFrame(cluster_rows)
    parts.append("<h2>Clusters</h2>" + _table(frame, ("genes",), escape=False))

    term_rows = []
    for cluster in summary["cluster"].astype(str):
        record = records.get(cluster, {})
        for term in record.get("top_terms", [])[:6]:
            term_rows.append(
                {
                    "cluster": _e(cluster_title(cluster, record.get("label"))),
                    "term": _e(term["name"]),
                    "library": _e(short_library(term["library"])),
                    "overlap": _e(term["overlap"]),
                    "adjusted p": f"{term['adjusted_p_value']:.2e}",
                    "genes": _e(", ".join(term["genes"].split(";")[:12])),
                }
            )
    parts.append("<h2>Top enriched terms per cluster</h2>")
    if term_rows:
        parts.append(_table(pd.DataFrame(term_rows), ("overlap", "adjusted p"), escape=False))
    else:
        parts.append("<p>No cluster has a significantly enriched gene set.</p>")

    parts.append("<h2>Benchmark</h2>")
    evaluation = run.evaluation()
    if evaluation is None:
        parts.append(
            "<p>This run has not been evaluated yet (Benchmark page, or "
            f"<code>python -m musegnn_core evaluate --run {_e(run.name)}</code>).</p>"
        )
    else:
        table = evaluation.apply(pd.to_numeric, errors="coerce")
        shown = table.map(lambda v: "n/a" if not math.isfinite(v) else f"{v:.3f}")
        shown.insert(0, "rewards", [metric_reading(str(k)) for k in shown.index])
        shown.index = [METRIC_LABELS.get(str(k), str(k)) for k in shown.index]
        shown = shown.reset_index(names="score").rename(columns=METHOD_NAMES)
        parts.append(
            _table(shown, tuple(c for c in shown.columns if c not in ("score", "rewards")))
        )
        for note in benchmark_reading(table):
            parts.append(f"<p class='note'>{_e(note)}</p>")

    body = "\n".join(parts)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>MuSe-GNN report: {_e(run.name)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def write_report(workspace, run_name: str, output: str | Path, resolution=None) -> Path:
    """Write the report atomically to ``output`` (an .html file)."""
    from .errors import ValidationError

    output = Path(output)
    if output.suffix.lower() not in (".html", ".htm"):
        raise ValidationError(f"The report is an HTML file: name it .html, not {output.name!r}.")
    if output.is_dir():
        raise ValidationError(f"{output} is a folder; give a file name ending in .html.")
    atomic_write_text(output, build_report(workspace, run_name, resolution))
    return output

"""Plotly figures of the explore pages (drawing only: the numbers come from musegnn_core)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import plotly.graph_objects as go

from musegnn_core.analysis.annotate import short_library, short_term
from pages.ui import theme

#: What the UMAP can be coloured by: option -> label.
COLOR_OPTIONS = {
    "dataset": "Dataset",
    "tissue": "Tissue",
    "modality": "Modality",
    "species": "Species",
    "cluster": "Cluster",
    "in_all": "Gene present in all datasets",
    "n_datasets": "Number of datasets having the gene",
}
_IN_ALL, _NOT_ALL = "in all datasets", "not in all datasets"
#: Up to this many clusters, the UMAP names each cluster at its centre; beyond, numbers only.
MAX_NAMED_CENTRES = 12
#: Co-expression views up to this many genes name every gene; larger ones only their hubs.
LABEL_ALL_UP_TO = 30
N_HUB_LABELS = 12
#: Asked (seed) genes in co-expression views: dark, but lighter than the labels.
SEED_COLOR = "#1F4E79"


def color_values(embedding: ad.AnnData, labels: pd.Series, by: str) -> tuple[np.ndarray, dict]:
    """Per-row category for ``by`` and the colour of every category of the run."""
    obs = embedding.obs
    if by == "cluster":
        from musegnn_core.colors import cluster_colors

        values = np.asarray(labels, dtype=str)
        return values, cluster_colors(values)
    if by == "in_all":
        flags = obs["in_all_datasets"].to_numpy(dtype=bool)
        values = np.where(flags, _IN_ALL, _NOT_ALL).astype(object)
        return values, {_IN_ALL: theme.PRIMARY, _NOT_ALL: theme.MUTED}
    if by == "n_datasets":
        values = obs["n_datasets_with_gene"].astype(int).astype(str).to_numpy()
        return values, theme.count_colors(obs["dataset"].nunique())
    values = obs[by].astype(str).to_numpy()
    return values, theme.category_colors(obs[by].astype(str).unique())


def umap_figure(
    embedding: ad.AnnData,
    labels: pd.Series,
    by: str,
    highlight: Sequence[int] = (),
    point_size: int = 5,
    height: int = 640,
    titles: Mapping[str, str] | None = None,
    selected_cluster: str | None = None,
) -> tuple[go.Figure, list[np.ndarray]]:
    """The UMAP of the (gene, dataset) rows, one WebGL trace per category.

    ``titles`` (cluster -> "3 · label") name clusters in the hover, the legend and, when
    colouring by cluster, at each cluster's centre. With ``selected_cluster``, the other
    rows are drawn first in grey (one trace) and the selected cluster's rows in colour.
    Returns the figure and, per trace, the embedding rows it draws (in point order), so
    that a selection event (curve number, point index) maps back to rows.
    """
    titles = dict(titles or {})
    values, colors = color_values(embedding, labels, by)
    umap = np.asarray(embedding.obsm["X_umap"], dtype=np.float32)
    obs = embedding.obs
    # One hover string per point: about four times faster to serialise than a
    # three-column customdata, which matters at 50,000 points.
    genes = obs["gene"].astype(str).to_numpy(dtype=object)
    datasets = obs["dataset"].astype(str).to_numpy(dtype=object)
    clusters = np.asarray(labels, dtype=str)
    names = {c: theme.wrap_label(titles.get(c, f"cluster {c}"), 48) for c in np.unique(clusters)}
    hover = "<b>" + genes + "</b><br>" + datasets + "<br>" + np.array([names[c] for c in clusters])
    template = "%{text}<extra></extra>"
    fig = go.Figure()
    trace_rows: list[np.ndarray] = []
    in_focus = np.ones(len(values), dtype=bool)
    if selected_cluster is not None and selected_cluster in set(clusters):
        in_focus = clusters == selected_cluster
        rows = np.flatnonzero(~in_focus)
        fig.add_trace(
            go.Scattergl(
                x=umap[rows, 0],
                y=umap[rows, 1],
                mode="markers",
                name="other clusters",
                marker={"size": point_size, "color": theme.MUTED, "opacity": 0.35},
                unselected={"marker": {"opacity": 0.35}},
                text=hover[rows],
                hovertemplate=template,
            )
        )
        trace_rows.append(rows)
    present = set(values[in_focus])
    for category in [c for c in colors if c in present]:
        rows = np.flatnonzero((values == category) & in_focus)
        name = names.get(category, category) if by == "cluster" else category
        fig.add_trace(
            go.Scattergl(
                x=umap[rows, 0],
                y=umap[rows, 1],
                mode="markers",
                name=name,
                marker={"size": point_size, "color": colors[category], "opacity": 0.8},
                # A click must not fade the other points (plotly's default for a selection).
                unselected={"marker": {"opacity": 0.8}},
                text=hover[rows],
                hovertemplate=template,
            )
        )
        trace_rows.append(rows)
    if len(highlight):
        rows = np.asarray(highlight, dtype=int)
        fig.add_trace(
            go.Scattergl(
                x=umap[rows, 0],
                y=umap[rows, 1],
                mode="markers+text",
                name=f"{genes[rows[0]]} (searched)",
                text=datasets[rows],
                textposition="top center",
                textfont={"size": 13, "color": theme.HIGHLIGHT},
                marker={
                    "size": point_size * 3 + 4,
                    "color": "#FFD400",
                    "symbol": "star",
                    "line": {"width": 2, "color": theme.HIGHLIGHT},
                },
                unselected={"marker": {"opacity": 1}},
                hovertext=hover[rows],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )
        trace_rows.append(rows)
    if by == "cluster" or selected_cluster is not None:
        shown = [selected_cluster] if selected_cluster in set(clusters) else sorted(set(clusters))
        for cluster in shown:
            centre = np.median(umap[clusters == cluster], axis=0)
            text = f"<b>{cluster}</b>"
            term = centre_term(titles.get(cluster, ""))
            # Many clusters: numbers only at the centres (names pile up); legend and hover
            # carry the names.
            if term and len(shown) <= MAX_NAMED_CENTRES:
                text += " " + theme.wrap_label(term, 22)
            fig.add_annotation(
                x=float(centre[0]),
                y=float(centre[1]),
                text=text,
                showarrow=False,
                font={"size": 14 if selected_cluster is None else 16, "color": theme.HIGHLIGHT},
                bgcolor="rgba(255,255,255,0.7)",
            )
    fig.update_layout(
        **theme.base_layout(
            height=height,
            legend={"title": {"text": COLOR_OPTIONS[by]}, "itemsizing": "constant"},
            # Exports and redraws never keep a box or lasso drawn on the plot.
            dragmode="zoom",
        )
    )
    fig.update_xaxes(title="UMAP 1", showgrid=False, zeroline=False, showticklabels=False)
    fig.update_yaxes(title="UMAP 2", showgrid=False, zeroline=False, showticklabels=False)
    return theme.dark_text(fig), trace_rows


def centre_term(title: str) -> str:
    """What a cluster's centre label says besides its number: its first term, or nothing
    when the cluster is named by hub genes (the legend and hover have the full name)."""
    parts = str(title).split(" · ")
    if len(parts) < 3 or parts[1].startswith("hub genes"):
        return ""
    return parts[1].split(" / ")[0]


def selected_rows(event, trace_rows: Sequence[np.ndarray]) -> tuple[str, np.ndarray]:
    """Rows of a plotly selection event: ("click" | "region" | "none", rows).

    A box or lasso is a region; points without one are a click.
    """
    selection = (event or {}).get("selection") or {}
    rows = []
    for point in selection.get("points") or []:
        curve = point.get("curve_number", point.get("curveNumber"))
        index = point.get("point_index", point.get("point_number", point.get("pointIndex")))
        if curve is None or index is None or not 0 <= int(curve) < len(trace_rows):
            continue
        drawn = trace_rows[int(curve)]
        if 0 <= int(index) < len(drawn):
            rows.append(int(drawn[int(index)]))
    rows = np.array(list(dict.fromkeys(rows)), dtype=int)
    if rows.size == 0:
        return "none", rows
    region = bool(selection.get("box") or selection.get("lasso"))
    return ("region" if region else "click"), rows


def composition_heatmap(
    table: pd.DataFrame, by: str, share: bool, titles: Mapping[str, str] | None = None
) -> go.Figure:
    """Cluster (rows, named by ``titles``) x category (columns): counts or each cluster's
    shares. Long cluster names are wrapped, never cut."""
    values = table.to_numpy(dtype=float)
    if share:
        totals = values.sum(axis=1, keepdims=True)
        values = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)
    titles = titles or {}
    y = [theme.wrap_label(titles.get(str(c), f"cluster {c}"), 44) for c in table.index]
    x = [theme.wrap_label(str(c), 18) for c in table.columns]
    label = "share of the cluster" if share else "rows"
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=x,
            y=y,
            colorscale=theme.SEQUENTIAL,
            zmin=0,
            colorbar={"title": {"text": label}},
            texttemplate=("%{z:.0%}" if share else "%{z:d}") if values.size <= 600 else None,
            textfont={"size": 13},
            hovertemplate=f"%{{y}}<br>{by} %{{x}}<br>{label}: "
            + ("%{z:.1%}" if share else "%{z:d}")
            + "<extra></extra>",
        )
    )
    lines = sum(max(1, label.count("<br>") + 1) for label in y)
    fig.update_layout(
        **theme.base_layout(
            height=max(320, 20 * lines + 12 * len(y) + 180),
            margin={"l": 10, "r": 10, "t": 30, "b": 10},
        )
    )
    fig.update_yaxes(autorange="reversed", title="", automargin=True)
    fig.update_xaxes(title=by, tickangle=-30, automargin=True)
    return theme.dark_text(fig)


def cosine_heatmap(matrix: pd.DataFrame, gene: str) -> go.Figure:
    """Cosine similarity between one gene's instances in different datasets."""
    fig = go.Figure(
        go.Heatmap(
            z=matrix.to_numpy(),
            x=list(matrix.columns),
            y=list(matrix.index),
            zmin=-1,
            zmax=1,
            zmid=0,
            colorscale="RdBu_r",
            texttemplate="%{z:.2f}",
            colorbar={"title": {"text": "cosine"}},
            hovertemplate="%{y}<br>%{x}<br>cosine %{z:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        **theme.base_layout(
            title={"text": f"{gene}: its instances across datasets"},
            height=max(300, 40 * len(matrix) + 200),
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=-30)
    return theme.dark_text(fig)


def enrichment_bars(result: pd.DataFrame, top: int = 15) -> go.Figure:
    """The top terms by adjusted p-value, as -log10(adjusted p), coloured by library."""
    shown = result.nsmallest(top, "adjusted_p_value").iloc[::-1]
    colors = theme.category_colors(result["library"].unique())
    score = -np.log10(np.clip(shown["adjusted_p_value"].astype(float), 1e-300, 1.0))
    # Long names are wrapped, never cut; the library is named on every bar.
    terms = [theme.wrap_label(short_term(t), 48) for t in shown["term"].astype(str)]
    fig = go.Figure()
    for library in [lib for lib in colors if lib in set(shown["library"])]:
        mask = (shown["library"] == library).to_numpy()
        fig.add_trace(
            go.Bar(
                x=score[mask],
                y=np.asarray(terms, dtype=object)[mask],
                orientation="h",
                name=library,
                marker_color=colors[library],
                text=[short_library(library)] * int(mask.sum()),
                textposition="outside",
                cliponaxis=False,
                textfont={"size": 13, "color": theme.TEXT_COLOR},
                customdata=np.column_stack(
                    [
                        shown["term"].to_numpy()[mask],
                        shown["overlap"].to_numpy()[mask],
                        shown["adjusted_p_value"].to_numpy()[mask],
                        shown["genes"].to_numpy()[mask],
                    ]
                ),
                hovertemplate="<b>%{customdata[0]}</b><br>" + library + "<br>overlap "
                "%{customdata[1]}<br>adjusted p %{customdata[2]:.3g}<br>%{customdata[3]}"
                "<extra></extra>",
            )
        )
    fig.add_vline(
        x=-math.log10(0.05),
        line={"dash": "dash", "color": theme.HIGHLIGHT, "width": 1},
        annotation_text="adj. p = 0.05",
        annotation_position="top",
    )
    lines = sum(label.count("<br>") + 1 for label in terms)
    fig.update_layout(
        **theme.base_layout(
            height=max(320, 22 * lines + 14 * len(shown) + 160),
            legend={"title": {"text": "library"}, "orientation": "h", "y": -0.15},
            yaxis={"categoryorder": "array", "categoryarray": terms},
        )
    )
    fig.update_xaxes(title="-log10 adjusted p-value")
    return theme.dark_text(fig)


def _edge_hover(mids: np.ndarray, group: str, columns: list, details: str) -> go.Scatter:
    """Invisible markers at edge midpoints: plotly lines cannot carry a hover per segment."""
    return go.Scatter(
        x=mids[:, 0],
        y=mids[:, 1],
        mode="markers",
        marker={"size": 8, "color": "rgba(0,0,0,0)"},
        legendgroup=group,
        showlegend=False,
        customdata=np.column_stack(columns),
        hovertemplate="%{customdata[0]} – %{customdata[1]}<br>" + details + "<extra></extra>",
    )


def _segments(nodes: pd.DataFrame, pairs: pd.DataFrame) -> tuple[list, list, np.ndarray]:
    """Line coordinates (None-separated) and the midpoints of the edges in ``pairs``."""
    where = {g: (x, y) for g, x, y in zip(nodes["gene"], nodes["x"], nodes["y"], strict=True)}
    xs, ys, mids = [], [], []
    for a, b in zip(pairs["source"], pairs["target"], strict=True):
        (x0, y0), (x1, y1) = where[a], where[b]
        xs += [x0, x1, None]
        ys += [y0, y1, None]
        mids.append(((x0 + x1) / 2, (y0 + y1) / 2))
    return xs, ys, np.asarray(mids, dtype=float).reshape(-1, 2)


def network_figure(
    sub,
    view: str | None,
    dataset_colors: Mapping[str, str],
    height: int = 680,
    title: str | None = None,
) -> go.Figure:
    """The co-expression subgraph: merged over datasets (``view`` None) or one dataset's edges.

    Merged: edges coloured and thickened by how many datasets support them. One dataset:
    its edges only, solid for positive and dotted for negative residual correlation;
    genes absent from that dataset are faded. Nodes are sized by degree; the asked
    (seed) genes are dark with bold names.
    """
    nodes = sub.nodes
    fig = go.Figure()
    if view is None:
        merged = sub.merged
        maximum = int(merged["n_datasets"].max()) if len(merged) else 1
        colors = theme.support_colors(maximum)
        # Thinner edges in a large view: a dense module stays a web, not a solid patch.
        step = 0.5 if len(nodes) > LABEL_ALL_UP_TO else 1.4
        for n in sorted(merged["n_datasets"].unique()) if len(merged) else []:
            for positive, dash, sign in ((True, "solid", "r > 0"), (False, "dot", "r < 0")):
                part = merged[
                    (merged["n_datasets"] == n) & ((merged["mean_correlation"] >= 0) == positive)
                ]
                if part.empty:
                    continue
                xs, ys, mids = _segments(nodes, part)
                name = f"in {n} dataset{'s' if n > 1 else ''}, {sign}"
                fig.add_trace(
                    go.Scatter(
                        x=xs,
                        y=ys,
                        mode="lines",
                        line={"width": 0.6 + step * n, "color": colors[str(int(n))], "dash": dash},
                        name=name,
                        legendgroup=name,
                        hoverinfo="skip",
                    )
                )
                fig.add_trace(
                    _edge_hover(
                        mids,
                        name,
                        [
                            part["source"],
                            part["target"],
                            part["datasets"],
                            part["mean_correlation"],
                        ],
                        "%{customdata[2]}<br>mean r %{customdata[3]:.2f}",
                    )
                )
        present = np.ones(len(nodes), dtype=bool)
    else:
        edges = sub.edges[sub.edges["dataset"] == view]
        color = dataset_colors.get(view, theme.PRIMARY)
        for positive, dash, name in ((True, "solid", "positive r"), (False, "dot", "negative r")):
            part = edges[(edges["correlation"] >= 0) == positive]
            if part.empty:
                continue
            xs, ys, mids = _segments(nodes, part)
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines",
                    line={"width": 2, "color": color, "dash": dash},
                    name=f"{view}: {name}",
                    legendgroup=name,
                    hoverinfo="skip",
                )
            )
            fig.add_trace(
                _edge_hover(
                    mids,
                    name,
                    [part["source"], part["target"], part["correlation"]],
                    "r %{customdata[2]:.2f}",
                )
            )
        present = np.array([view in str(d).split(", ") for d in nodes["datasets"]], dtype=bool)
    large = len(nodes) > LABEL_ALL_UP_TO
    degree = nodes["degree"].to_numpy(dtype=float)
    # Smaller markers in a large view, so a dense module is not one dark blob.
    size = (7 + 2.5 * np.sqrt(degree)) if large else (10 + 4 * np.sqrt(degree))
    for is_seed, name in ((False, "neighbour genes"), (True, "asked genes")):
        mask = nodes["seed"].to_numpy(dtype=bool) == is_seed
        if not mask.any():
            continue
        part = nodes[mask]
        opacity = np.where(present[mask], 0.9, 0.25)
        labels = [] if large else [f"<b>{g}</b>" if is_seed else g for g in part["gene"]]
        fig.add_trace(
            go.Scatter(
                x=part["x"],
                y=part["y"],
                mode="markers" if large else "markers+text",
                name=name,
                text=labels,
                textposition="top center",
                textfont={"size": 15 if is_seed else 14, "color": theme.HIGHLIGHT},
                marker={
                    "size": size[mask],
                    "color": SEED_COLOR if is_seed else "#8FB8D8",
                    "opacity": opacity,
                    "line": {"width": 1, "color": "white"},
                },
                customdata=np.column_stack([part["gene"], part["datasets"], part["degree"]]),
                hovertemplate="<b>%{customdata[0]}</b><br>in: %{customdata[1]}"
                "<br>degree %{customdata[2]}<extra></extra>",
            )
        )
    if large:
        # A large view names only its hubs (highest degree), on top of everything and on a
        # light background so that no marker hides a name; every name is on hover.
        for row in nodes.nlargest(N_HUB_LABELS, "degree", keep="first").itertuples():
            fig.add_annotation(
                x=row.x,
                y=row.y,
                text=f"<b>{row.gene}</b>" if row.seed else row.gene,
                showarrow=False,
                yshift=12,
                font={"size": 14, "color": theme.HIGHLIGHT},
                bgcolor="rgba(255,255,255,0.8)",
            )
    fig.update_layout(
        **theme.base_layout(
            height=height,
            hovermode="closest",
            title={"text": title or "", "font": {"size": 16, "color": theme.TEXT_COLOR}},
        )
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, scaleanchor="x", scaleratio=1)
    return theme.dark_text(fig)


def benchmark_bars(
    table: pd.DataFrame,
    rows: Sequence[str],
    labels: Mapping[str, str],
    highlight: str | None = None,
) -> go.Figure:
    """Grouped bars: ``rows`` of ``table`` (metrics x methods) on x, one colour per method."""
    shown = table.loc[[r for r in rows if r in table.index]]
    x = [labels.get(r, r) for r in shown.index]
    fig = go.Figure()
    for method in shown.columns:
        values = shown[method].astype(float)
        fig.add_trace(
            go.Bar(
                x=x,
                y=values,
                name=theme.method_label(method),
                marker_color=theme.method_color(method),
                # Values are in the table and on hover; only undefined ones are written.
                text=["n/a" if not np.isfinite(v) else "" for v in values],
                textposition="outside",
                hovertemplate=f"{theme.method_label(method)}<br>%{{x}}: %{{y:.3f}}<extra></extra>",
            )
        )
    if highlight is not None and highlight in shown.index:
        position = list(shown.index).index(highlight)
        fig.add_vrect(
            x0=position - 0.5,
            x1=position + 0.5,
            fillcolor="#FDE68A",
            opacity=0.35,
            line_width=0,
            layer="below",
        )
    fig.update_layout(
        **theme.base_layout(
            barmode="group",
            height=440,
            legend={"orientation": "h", "y": 1.1, "title": {"text": ""}},
        )
    )
    fig.update_yaxes(range=[0, 1.1], title="score (higher is better)", gridcolor="#E5E7EB")
    return theme.dark_text(fig)

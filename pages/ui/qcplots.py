"""Quality-control figures of the Data page (numbers from musegnn_core.graphs.cellqc)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

QC_COLORS = {"passes default QC": "#2a6f97", "removed by default QC": "#d62728"}
_LAYOUT = {"height": 320, "margin": {"l": 10, "r": 10, "t": 40, "b": 10}, "bargap": 0.05}


def _with_qc_label(table: pd.DataFrame) -> pd.DataFrame:
    out = table.copy()
    out["QC"] = np.where(out["passes_qc"], *QC_COLORS)
    return out


def counts_histogram(table: pd.DataFrame) -> go.Figure:
    """Total counts per cell, on a log10 scale (depth spans orders of magnitude)."""
    data = _with_qc_label(table)
    data["log10 counts per cell"] = np.log10(data["total_counts"].clip(lower=1))
    figure = px.histogram(
        data,
        x="log10 counts per cell",
        color="QC",
        color_discrete_map=QC_COLORS,
        nbins=50,
        title="Counts per cell",
    )
    figure.update_layout(**_LAYOUT, legend_title_text="", yaxis_title="cells")
    return figure


def genes_histogram(table: pd.DataFrame) -> go.Figure:
    """Detected genes per cell."""
    data = _with_qc_label(table).rename(columns={"n_genes_by_counts": "genes per cell"})
    figure = px.histogram(
        data,
        x="genes per cell",
        color="QC",
        color_discrete_map=QC_COLORS,
        nbins=50,
        title="Genes per cell",
    )
    figure.update_layout(**_LAYOUT, legend_title_text="", yaxis_title="cells")
    return figure


def spatial_scatter(table: pd.DataFrame) -> go.Figure:
    """Spots on their coordinates, coloured by total counts (log10)."""
    data = table.assign(**{"log10 counts": np.log10(table["total_counts"].clip(lower=1))})
    figure = px.scatter(
        data,
        x="x",
        y="y",
        color="log10 counts",
        color_continuous_scale="Viridis",
        hover_data={"cell": True, "total_counts": True, "n_genes_by_counts": True},
        title="Spots coloured by counts",
    )
    figure.update_traces(marker={"size": 9})
    figure.update_yaxes(scaleanchor="x", scaleratio=1)
    figure.update_layout(height=460, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure

"""Colours and figure settings shared by every page, so a dataset looks the same everywhere.

Each category (dataset, tissue, modality, species, cluster) gets its colour from its
position in the sorted list of all categories of that kind in the run: the same run gives
the same colours on every page and in every session. The palettes are dark, saturated
colours that stay distinct on a white background and on a projector; light grey is kept
for de-emphasised points, near-black for highlights.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable

#: Distinct colours for up to ten categories (D3 category10 without its grey).
QUALITATIVE = (
    "#1F77B4",
    "#D62728",
    "#2CA02C",
    "#FF7F0E",
    "#9467BD",
    "#8C564B",
    "#E377C2",
    "#17BECF",
    "#BCBD22",
    "#393B79",
)
#: Further colours for long lists (clusters): plotly's Dark24, which keeps contrast on white.
EXTENDED = (
    *QUALITATIVE,
    "#2E91E5",
    "#E15F99",
    "#1CA71C",
    "#FB0D0D",
    "#DA16FF",
    "#B68100",
    "#750D86",
    "#EB663B",
    "#511CFB",
    "#00A08B",
    "#FB00D1",
    "#B2828D",
    "#6C7C32",
    "#778AAE",
    "#862A16",
    "#A777F1",
    "#620042",
    "#1616A7",
    "#DA60CA",
    "#6C4516",
    "#0D2A63",
    "#AF0038",
)
#: De-emphasised points (background, "not selected").
MUTED = "#C4CAD0"
#: Highlighted points (the searched gene, seed genes).
HIGHLIGHT = "#111111"
#: The app's primary colour (.streamlit/config.toml), used for MuSe-GNN in benchmark charts.
PRIMARY = "#2A6F97"
#: Baselines in benchmark charts: distinct but quieter than MuSe-GNN.
METHOD_COLORS = {
    "musegnn": PRIMARY,
    "coexpression": "#7B6D8D",
    "profile": "#C08497",
    "pca": "#E08E45",
    "gae": "#6A994E",
    "random": "#9AA5B1",
}
METHOD_LABELS = {
    "musegnn": "MuSe-GNN",
    "coexpression": "Co-expression",
    "profile": "Co-expression profiles",
    "pca": "PCA",
    "gae": "GAE",
    "random": "Random",
}
#: A sequential scale from pale to dark (heatmaps, counts); its light end is not white so
#: that a low count stays visible.
SEQUENTIAL = "Blues"
#: Font size and colour of figure text: large and dark enough for a projector.
FONT_SIZE = 14
TEXT_COLOR = "#222222"
FONT = {"size": FONT_SIZE, "color": TEXT_COLOR}


def sort_categories(values: Iterable) -> list[str]:
    """Categories in a stable order: numbers numerically ("2" before "10"), then text."""

    def key(value: str):
        try:
            return (0, float(value), value)
        except ValueError:
            return (1, math.inf, value.lower())

    return sorted({str(v) for v in values}, key=key)


def category_colors(values: Iterable, palette: tuple[str, ...] | None = None) -> dict[str, str]:
    """A colour per category, from its rank in the sorted list (cycling past the palette)."""
    ordered = sort_categories(values)
    if palette is None:
        palette = QUALITATIVE if len(ordered) <= len(QUALITATIVE) else EXTENDED
    return {value: palette[i % len(palette)] for i, value in enumerate(ordered)}


def count_colors(maximum: int) -> dict[str, str]:
    """Colours for counts 1..maximum (e.g. datasets having a gene): pale to dark."""
    from plotly.colors import sample_colorscale

    maximum = max(int(maximum), 1)
    points = [0.3 + 0.7 * (i / max(maximum - 1, 1)) for i in range(maximum)]
    colors = sample_colorscale("Viridis_r", points, colortype="rgb")
    return {str(i + 1): colors[i] for i in range(maximum)}


#: Edges by how many datasets support them: grey for one, then warm and darker with support.
SUPPORT = ("#AAB7C4", "#F2A541", "#E4572E", "#A4243B", "#6A1B4D", "#3B0F3F", "#1B0A2A", "#000000")


def support_colors(maximum: int) -> dict[str, str]:
    """Colours for "supported by n datasets", n = 1..maximum (the last colour repeats)."""
    return {str(n): SUPPORT[min(n, len(SUPPORT)) - 1] for n in range(1, max(int(maximum), 1) + 1)}


def method_color(method: str) -> str:
    """A method's colour; an unknown method gets a fixed one from its name (crc32, not hash())."""
    return METHOD_COLORS.get(method, QUALITATIVE[zlib.crc32(method.encode()) % len(QUALITATIVE)])


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, method)


def figure_config(filename: str, image_format: str = "svg", scale: int = 2) -> dict:
    """The plotly toolbar: always shown, downloads the figure under a meaningful name.

    SVG for vector figures (bars, heatmaps, networks); PNG for large WebGL scatter plots,
    which a browser cannot export as vectors.
    """
    return {
        "displaylogo": False,
        "displayModeBar": True,
        "toImageButtonOptions": {"format": image_format, "filename": filename, "scale": scale},
    }


def base_layout(**extra) -> dict:
    """Layout settings every figure shares: readable fonts, white background, tight margins."""
    layout = {
        "font": dict(FONT),
        "plot_bgcolor": "white",
        "paper_bgcolor": "white",
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "legend": {"itemsizing": "constant", "font": dict(FONT)},
        "hoverlabel": {"font": {"size": FONT_SIZE}},
        # Axis titles and tick labels in the same dark grey (plotly's default is lighter).
        "xaxis": {"tickfont": dict(FONT), "title": {"font": dict(FONT)}},
        "yaxis": {"tickfont": dict(FONT), "title": {"font": dict(FONT)}},
    }
    for key, value in extra.items():
        if key == "legend" and isinstance(value, dict):
            layout["legend"] = {**layout["legend"], **value}
        elif key in ("xaxis", "yaxis") and isinstance(value, dict):
            layout[key] = {**layout[key], **value}
        else:
            layout[key] = value
    return layout


def dark_text(fig):
    """Axis titles, tick labels, legend and colour-bar text in the dark projector font.

    Needed after ``update_xaxes(title=...)``: a title given as text replaces the title's
    font, and Streamlit's chart theme then draws it light grey.
    """
    fig.update_xaxes(title_font=FONT, tickfont=FONT)
    fig.update_yaxes(title_font=FONT, tickfont=FONT)
    fig.update_layout(legend_font=FONT, legend_title_font=FONT)
    fig.update_traces(
        colorbar={"tickfont": FONT, "title": {"font": FONT}}, selector={"type": "heatmap"}
    )
    return fig


def wrap_label(text: str, width: int = 32) -> str:
    """A long label broken into lines (plotly's ``<br>``) instead of cut off."""
    import textwrap

    return "<br>".join(textwrap.wrap(str(text), width, break_long_words=False)) or str(text)

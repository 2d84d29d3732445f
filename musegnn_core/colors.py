"""Cluster colours that stay distinguishable for many clusters (pages and the report).

The colours are chosen greedily, each as far as possible (in CIELAB, the space where
distance follows perceived difference) from those already chosen, among colours dark
enough to read on white and on a projector (lightness 25-65). So cluster 0 and cluster
10 never share a colour the way a repeated ten-colour palette makes them, and the first
colours are the most different from each other.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np

#: The first colour (the app's blue); the others follow from it.
_START = (0x1F, 0x77, 0xB4)
_LIGHTNESS = (25.0, 65.0)


def _lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in [0, 1] (rows) to CIELAB (D65)."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array(
        [[0.4124, 0.2126, 0.0193], [0.3576, 0.7152, 0.1192], [0.1805, 0.0722, 0.9505]]
    )
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.column_stack(
        [116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])]
    )


@functools.lru_cache(maxsize=8)
def _palette(n: int) -> tuple[str, ...]:
    steps = np.linspace(0.0, 1.0, 11)
    grid = np.array(np.meshgrid(steps, steps, steps, indexing="ij")).reshape(3, -1).T
    lab = _lab(grid)
    readable = (lab[:, 0] >= _LIGHTNESS[0]) & (lab[:, 0] <= _LIGHTNESS[1])
    grid, lab = grid[readable], lab[readable]
    start = np.argmin(np.abs(grid - np.array(_START) / 255).sum(axis=1))
    chosen = [int(start)]
    nearest = np.linalg.norm(lab - lab[start], axis=1)
    while len(chosen) < n:
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, np.linalg.norm(lab - lab[pick], axis=1))
    return tuple(
        "#" + "".join(f"{round(v * 255):02X}" for v in grid[i]) for i in chosen[: max(n, 0)]
    )


def distinct_colors(n: int) -> list[str]:
    """``n`` distinct hex colours; the first ones are the most different from each other."""
    return list(_palette(max(int(n), 1)))[: max(int(n), 0)]


def cluster_colors(clusters: Iterable) -> dict[str, str]:
    """A colour per cluster label ("0", "1", ..., numeric order)."""

    def key(value: str):
        return (0, int(value), value) if value.isdigit() else (1, 0, value)

    ordered = sorted({str(c) for c in clusters}, key=key)
    return dict(zip(ordered, distinct_colors(len(ordered)), strict=True))

"""SPARK-X: fast detection of spatially variable genes (Zhu, Sun & Zhou, 2021).

MuSe-GNN picks the 1000 genes of a spatial dataset whose expression depends most on
location, then builds the CS-CORE graph on those. SPARK-X tests, for each gene, the
association between its raw count vector ``y`` and a set of spatial kernels. Every
kernel is a rank-d projection ``K = F̃ (F̃ᵀF̃)⁻¹ F̃ᵀ`` built from an n×d feature matrix
``F`` of transformed coordinates, so no n×n matrix is ever formed:

    T = n · yᵀ K y / yᵀy,      λ_G = Σ(y − ȳ)² / Σy²,      T / λ_G ~ χ²_rank(K)

The eleven kernels of the default ``"mixture"`` option are the raw coordinates
("projection"), five Gaussian and five cosine transforms per axis with length scales
at the 20/40/60/80/100% quantiles of the centred absolute coordinates. Their p-values
are combined by the Cauchy combination test (ACAT) and adjusted by Benjamini-Yekutieli.
See ``shared/docs/cscore-sparkx.md`` §2 for the derivation and the reference numbers.

Differences from the reference R package (``xzhoulab/SPARK``), each on purpose:

- p-values are the **exact** χ² tail ``Q(r/2, T/(2λ_G))`` instead of Davies' method,
  which is erratic for 17 ≲ T/λ_G < 29.5 (off by up to 9×).
- All genes are handled at once (one sparse-dense product for all kernels).
- A constant non-zero gene (λ_G = 0; the reference crashes) gets T = 0 and p = 1.
- A singular ``F̃ᵀF̃`` (collinear features, e.g. all spots on a line, or a length
  scale of 0 when more than 20% of the spots sit on an axis' mean) does not fail: the
  kernel is the projection onto the span of ``F̃`` computed by a pseudo-inverse, and its
  χ² has ``rank(F̃)`` degrees of freedom. A kernel of rank 0 (all its features constant)
  carries no information: its p-values are NaN and it is left out of the combination.
- ACAT: when a gene has both a p of exactly 0 and one of exactly 1 (the reference
  raises), 0 wins. The Cauchy tail is computed as ``atan2(1, C)/π``, which equals
  ``0.5 − atan(C)/π`` but keeps full relative precision for large C (the literal
  ``1 − cdf`` of the reference quantises p to multiples of 2⁻⁵³).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import special

__all__ = [
    "KERNEL_QUANTILES",
    "SparkXResult",
    "benjamini_yekutieli",
    "cauchy_combination",
    "kernel_names",
    "length_scales",
    "rank_spatially_variable_genes",
    "sparkx",
]

#: Quantiles of |centred coordinate| used as the Gaussian/cosine length scales.
KERNEL_QUANTILES = (0.2, 0.4, 0.6, 0.8, 1.0)

#: Relative eigenvalue cut-off of the normalised F̃ᵀF̃ below which a direction is dropped.
RANK_RTOL = 1e-12


@dataclass(frozen=True)
class SparkXResult:
    """What :func:`sparkx` found, one table row per kept gene (input order).

    ``table`` columns: ``gene`` (name, or input column index when no names were
    given), ``gene_index`` (input column index), ``combined_pvalue``,
    ``adjusted_pvalue`` (Benjamini-Yekutieli), ``lambda_g``, then ``stat_<kernel>`` and
    ``pval_<kernel>`` per kernel. The other fields keep what is needed to audit a run:
    kept spots (boolean mask over the input rows), the per-axis length scales
    (d × 5) and the rank (χ² degrees of freedom) of each kernel.
    """

    table: pd.DataFrame
    kernels: tuple[str, ...]
    kept_genes: np.ndarray
    kept_spots: np.ndarray
    length_scales: np.ndarray
    kernel_rank: np.ndarray

    @property
    def stats(self) -> np.ndarray:
        """m × K matrix of T statistics (columns in ``kernels`` order)."""
        return self.table[[f"stat_{k}" for k in self.kernels]].to_numpy()

    @property
    def pvalues(self) -> np.ndarray:
        """m × K matrix of per-kernel p-values (columns in ``kernels`` order)."""
        return self.table[[f"pval_{k}" for k in self.kernels]].to_numpy()


def kernel_names(option: str = "mixture") -> tuple[str, ...]:
    """Kernel names in output order: projection, gaus1..5, cos1..5 (or projection only)."""
    if option == "single":
        return ("projection",)
    if option == "mixture":
        m = len(KERNEL_QUANTILES)
        return (
            "projection",
            *(f"gaus{i}" for i in range(1, m + 1)),
            *(f"cos{i}" for i in range(1, m + 1)),
        )
    raise ValueError(f"option must be 'mixture' or 'single', got {option!r}")


def length_scales(coords: np.ndarray) -> np.ndarray:
    """Per-axis length scales: type-7 quantiles of |coordinate − mean| (d × 5).

    Each axis gets its own scales, so the transforms are invariant to per-axis scaling.
    """
    centred = np.abs(coords - coords.mean(axis=0))
    return np.quantile(centred, KERNEL_QUANTILES, axis=0).T


def _transform(centred: np.ndarray, scale: np.ndarray, kind: str) -> np.ndarray:
    """Gaussian or cosine transform of centred coordinates; axes with scale 0 become 0.

    A zero scale (an axis where most spots sit on the mean) would give 0/0; a zero
    column is later recognised as carrying no direction, which is the honest outcome.
    """
    ok = scale > 0
    safe = np.where(ok, scale, 1.0)
    if kind == "gaus":
        f = np.exp(-(centred**2) / (2.0 * safe**2))
    else:
        f = np.cos(2.0 * np.pi * centred / safe)
    return np.where(ok, f, 0.0)


def _centre(coords: np.ndarray) -> np.ndarray:
    """Coordinates minus their mean, with constant axes set exactly to 0.

    The mean of n identical floats is not always that float, and the rounding residue
    (~1e-17) would otherwise be blown up into a random feature by the transforms.
    """
    centred = coords - coords.mean(axis=0)
    spread = np.ptp(coords, axis=0)
    size = np.abs(coords).max(axis=0)
    centred[:, spread <= 1e-12 * size] = 0.0
    return centred


def _features(coords: np.ndarray, option: str) -> tuple[list[np.ndarray], np.ndarray]:
    """The n×d feature matrix F of each kernel, in :func:`kernel_names` order.

    The projection kernel uses the centred coordinates (K is translation-invariant).
    """
    centred = _centre(coords)
    feats = [centred]
    scales = length_scales(centred)
    if option == "mixture":
        for kind in ("gaus", "cos"):
            feats.extend(_transform(centred, scales[:, q], kind) for q in range(scales.shape[1]))
    return feats, scales


def _whiten(f: np.ndarray) -> np.ndarray:
    """Orthonormal basis (n × r) of the span of the centred features: K = U Uᵀ.

    Columns are scaled to unit norm first so the rank cut-off is scale-free; the
    eigen-decomposition of the small d×d Gram matrix then acts as a pseudo-inverse.
    """
    fc = f - f.mean(axis=0)
    norms = np.linalg.norm(fc, axis=0)
    fc = fc / np.where(norms > 0, norms, 1.0)
    evals, evecs = np.linalg.eigh(fc.T @ fc)
    keep = evals > RANK_RTOL * max(float(evals.max(initial=0.0)), 0.0)
    return (fc @ evecs[:, keep]) / np.sqrt(evals[keep])


def _kernel_stats(y: sp.csc_matrix, bases: Sequence[np.ndarray], yy: np.ndarray) -> np.ndarray:
    """T (m × K) for all genes and kernels from one sparse-dense product ``Yᵀ [U_1 … U_K]``."""
    n = y.shape[0]
    widths = [b.shape[1] for b in bases]
    proj = np.asarray(y.T @ np.hstack(bases))
    bounds = np.cumsum([0, *widths])
    out = np.empty((y.shape[1], len(bases)))
    for k in range(len(bases)):  # loop over the 11 kernels, never over genes
        out[:, k] = (proj[:, bounds[k] : bounds[k + 1]] ** 2).sum(axis=1)
    return n * out / yy[:, None]


def _chi2_pvalues(stat: np.ndarray, lam: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Exact upper tail of T/λ_G ~ χ²_r, i.e. ``Q(r/2, T/(2λ_G))``; NaN for rank-0 kernels."""
    with np.errstate(divide="ignore", invalid="ignore"):
        x = stat / lam[:, None]
    df = np.broadcast_to(ranks.astype(float), x.shape)
    p = special.gammaincc(np.maximum(df, 1.0) / 2.0, x / 2.0)
    return np.where(df > 0, p, np.nan)


def cauchy_combination(pvalues: np.ndarray) -> np.ndarray:
    """ACAT with equal weights over the finite p-values of each row (spec §2.5).

    Rules in order: no finite p → NaN; any p = 0 → 0 (also when a 1 is present, where
    the reference raises: 0 wins); any p = 1 → 1; otherwise the Cauchy tail of
    ``C = mean(t_k)`` with ``t_k = 1/(p_k π)`` for p_k < 1e-16 else ``tan((0.5 − p_k) π)``,
    and ``1/(Cπ)`` beyond C = 1e15. NaN entries (degenerate kernels) are ignored.
    """
    p = np.atleast_2d(np.asarray(pvalues, dtype=np.float64))
    valid = np.isfinite(p)
    count = valid.sum(axis=1)
    has0 = (valid & (p == 0)).any(axis=1)
    has1 = (valid & (p == 1)).any(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p < 1e-16, 1.0 / (p * np.pi), np.tan((0.5 - p) * np.pi))
        c = np.where(valid & ~(p == 0), t, 0.0).sum(axis=1) / count
        tail = np.where(c > 1e15, 1.0 / (c * np.pi), np.arctan2(1.0, c) / np.pi)
    out = np.where(has1, 1.0, tail)
    out = np.where(has0, 0.0, out)
    return np.where(count > 0, out, np.nan)


def benjamini_yekutieli(pvalues: np.ndarray) -> np.ndarray:
    """Benjamini-Yekutieli adjustment (R's ``p.adjust(method="BY")``); NaN stays NaN."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    m = int(finite.sum())
    if m == 0:
        return out
    q = p[finite]
    c_m = (1.0 / np.arange(1, m + 1)).sum()
    order = np.argsort(q, kind="stable")
    scaled = c_m * m * q[order] / np.arange(1, m + 1)
    adj = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    res = np.empty(m)
    res[order] = adj
    out[finite] = res
    return out


def _as_csc(counts) -> sp.csc_matrix:
    """Spots × genes counts as float64 CSC (column = gene), from dense or sparse input."""
    if sp.issparse(counts):
        return sp.csc_matrix(counts, dtype=np.float64)
    return sp.csc_matrix(np.asarray(counts, dtype=np.float64))


def _filter(y: sp.csc_matrix) -> tuple[sp.csc_matrix, np.ndarray, np.ndarray]:
    """Drop zero-total spots, then genes with zero total over the kept spots."""
    spots = np.asarray(y.sum(axis=1)).ravel() > 0
    y = y[spots]
    genes = np.flatnonzero(np.asarray(y.sum(axis=0)).ravel() > 0)
    return y[:, genes], spots, genes


def _gene_moments(y: sp.csc_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uncentred sum of squares, λ_G, and a flag for constant genes (λ_G = 0 exactly)."""
    n = y.shape[0]
    yy = np.asarray(y.multiply(y).sum(axis=0)).ravel()
    total = np.asarray(y.sum(axis=0)).ravel()
    constant = (
        np.asarray(y.max(axis=0).toarray()).ravel() == np.asarray(y.min(axis=0).toarray()).ravel()
    )
    lam = np.where(constant, 0.0, (yy - total**2 / n) / yy)
    return yy, lam, constant


def sparkx(
    counts,
    coords,
    *,
    option: str = "mixture",
    gene_names: Sequence[str] | None = None,
) -> SparkXResult:
    """Test every gene for spatial variation with the SPARK-X kernels.

    Parameters
    ----------
    counts:
        Raw counts, **spots × genes** (the R package takes genes × spots), dense or
        SciPy sparse. No normalisation is applied, as in the reference.
    coords:
        Spot coordinates, n × d (d = 2 for Visium/ST).
    option:
        ``"mixture"`` (11 kernels, MuSe-GNN's choice) or ``"single"`` (projection only).
    gene_names:
        Optional names of the input columns, used for the ``gene`` column.
    """
    y = _as_csc(counts)
    xy = np.asarray(coords, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[0] != y.shape[0]:
        raise ValueError(
            f"coords must be spots × d with one row per counts row; "
            f"got {xy.shape} for counts {y.shape}"
        )
    if gene_names is not None and len(gene_names) != y.shape[1]:
        raise ValueError(f"{len(gene_names)} gene names for {y.shape[1]} genes")
    names = kernel_names(option)
    y, spots, genes = _filter(y)
    xy = xy[spots]
    feats, scales = _features(xy, option)
    bases = [_whiten(f) for f in feats]
    ranks = np.array([b.shape[1] for b in bases])
    yy, lam, constant = _gene_moments(y)
    stats = np.where(constant[:, None], 0.0, _kernel_stats(y, bases, yy))
    pvals = np.where(constant[:, None], 1.0, _chi2_pvalues(stats, lam, ranks))
    combined = cauchy_combination(pvals)
    labels = np.asarray(gene_names, dtype=object)[genes] if gene_names is not None else genes
    table = pd.DataFrame(
        {
            "gene": labels,
            "gene_index": genes,
            "combined_pvalue": combined,
            "adjusted_pvalue": benjamini_yekutieli(combined),
            "lambda_g": lam,
            **{f"stat_{k}": stats[:, i] for i, k in enumerate(names)},
            **{f"pval_{k}": pvals[:, i] for i, k in enumerate(names)},
        }
    )
    return SparkXResult(table, names, genes, spots, scales, ranks)


def rank_spatially_variable_genes(result: SparkXResult | pd.DataFrame) -> list:
    """Genes from most to least spatially variable, with a deterministic tie rule.

    Keys, in order: BY-adjusted p ascending; combined p ascending (the adjustment's
    running minimum creates ties); the largest kernel statistic scaled by its null
    scale, ``max_k T_k/λ_G``, descending (separates genes whose p-values all
    underflowed to 0); finally input order (stable sort). NaN values go last.
    """
    table = result.table if isinstance(result, SparkXResult) else result
    stat_cols = [c for c in table.columns if c.startswith("stat_")]
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = table[stat_cols].to_numpy() / table["lambda_g"].to_numpy()[:, None]
    strength = np.where(np.isnan(scaled), -np.inf, scaled).max(axis=1)
    order = np.lexsort(
        (
            -strength,
            table["combined_pvalue"].to_numpy(),
            table["adjusted_pvalue"].to_numpy(),
        )
    )
    return table["gene"].to_numpy()[order].tolist()

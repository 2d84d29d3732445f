"""CS-CORE: cell-type-specific gene co-expression from raw counts (Su et al., 2023).

MuSe-GNN builds each dataset's gene graph from CS-CORE p-values: an edge joins two
genes when the test of "no latent co-expression" gives ``p < 0.005``. Plain Pearson
correlation of log-normalised counts is attenuated by Poisson sampling noise and
confounded by sequencing depth; CS-CORE instead models the counts as
``x_ij | z_ij ~ Poisson(s_i z_ij)`` around a latent expression ``z`` and fits three
moment regressions (mean, variance, covariance) by iteratively re-weighted least
squares (IRLS). Its estimate targets the correlation of the latent ``z`` directly.

This module follows the reference implementations (Python v1.0.0 and the R package;
see ``shared/docs/cscore-sparkx.md`` §1), but every step is a whole-matrix operation:
the IRLS is O(n·p) per pass and the all-pairs covariance and test statistic are four
(p×n)·(n×p) products. There is no loop over genes or gene pairs.

Choices where the references differ or break, all following the R package unless said:

- Convergence set ``J`` leaves out genes whose θ was negative in the previous pass
  (the Python port aliases θ and so forces an extra pass).
- If no gene has a positive θ (no detectable biological variance anywhere), the shared
  size ``θ̄`` is undefined: the loop stops and ``θ̄ = +inf`` is used, i.e. pure Poisson
  weights. The Python reference raises in that case.
- Genes with ``σ_jj <= 0`` or a non-finite ``σ_jj`` (e.g. an all-zero gene) get zero
  rows/columns in ``est`` (diagonal 1). Their p-values are left as computed, which can
  be NaN: callers must treat NaN as "no evidence" (:func:`coexpression_adjacency` does).
- Two-sided p-values use ``erfc(|T|/√2)``, accurate far in the tail, instead of
  ``1 − Φ(|T|)`` which is exactly 0 beyond |T| ≈ 8.3.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["CSCoreResult", "coexpression_adjacency", "cscore", "default_device"]


@dataclass(frozen=True)
class CSCoreResult:
    """Outputs of :func:`cscore` as NumPy arrays (p×p ones symmetric).

    ``est`` is the co-expression (latent correlation) estimate, ``p_value`` the
    two-sided p-value of H0: σ_jk = 0, ``test_stat`` its z statistic. ``mu`` and
    ``sigma2`` are the per-gene latent mean (per UMI) and variance; ``n_iter`` is the
    number of IRLS passes. ``negative_variance`` flags genes whose variance estimate
    is ≤ 0 or non-finite (their ``est`` rows are zero, their p-values may be NaN).
    """

    est: np.ndarray
    p_value: np.ndarray
    test_stat: np.ndarray
    mu: np.ndarray
    sigma2: np.ndarray
    n_iter: int
    negative_variance: np.ndarray


def default_device() -> torch.device:
    """CUDA when available: the O(n·p²) products dominate and love a GPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def _exact_matmul(device: torch.device) -> Iterator[None]:
    """Switch TF32 off on CUDA for the duration: its 10-bit mantissa ruins the sums."""
    if device.type != "cuda":
        yield
        return
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@contextlib.contextmanager
def _single_torch_thread(device: torch.device) -> Iterator[None]:
    """On CPU, run torch's element-wise work on one thread.

    The O(n·p²) Gram products go to NumPy's BLAS, which uses every core; torch's
    OpenMP workers spinning between element-wise kernels would compete with it for
    the same cores (measured: up to 2x slower on 2 cores). Element-wise passes are
    memory-bound, so one thread loses little.
    """
    if device.type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _to_dense_tensor(x, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Dense tensor from NumPy, SciPy sparse or torch input (CS-CORE needs dense n×p anyway)."""
    if isinstance(x, torch.Tensor):
        t = x.detach().to_dense() if x.is_sparse else x.detach()
        return t.to(device=device, dtype=dtype)
    if sp.issparse(x):
        x = x.toarray()
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


def _positive_median(theta: torch.Tensor) -> float | None:
    """Median of the finite positive θ (type-7, as ``np.quantile``), or None if there are none.

    ``torch.median`` returns the lower middle value for an even count, which would
    differ from both references; ``torch.quantile`` interpolates like NumPy and R.
    """
    pos = theta[(theta > 0) & torch.isfinite(theta)]
    if pos.numel() == 0:
        return None
    return float(torch.quantile(pos, 0.5))


def _positive_or_one(w: torch.Tensor) -> torch.Tensor:
    """Replace non-positive or NaN weights by 1, as both references do."""
    return torch.where(w > 0, w, 1.0)


def _nb_weights(m: torch.Tensor, s2: torch.Tensor, mu: torch.Tensor, theta_bar: float | None):
    """Negative-binomial-like variances ``M + s² μ²/θ̄`` of the counts, made safe.

    With θ̄ undefined (no gene has a positive θ) the overdispersion term is dropped,
    leaving Poisson weights.
    """
    w = m if theta_bar is None else torch.addr(m, s2, mu.square() / theta_bar)
    return _positive_or_one(w)


def _gram(a: torch.Tensor) -> torch.Tensor:
    """``aᵀa`` for an n×p matrix, exactly symmetric.

    On CPU this goes through NumPy, whose matmul recognises the ``aᵀa`` pattern and
    calls BLAS ``syrk`` (half the flops of a general product; torch has no syrk) and
    mirrors the triangle it computed. The arrays are shared, not copied. On other
    devices it is a plain matmul, averaged with its transpose to undo rounding.
    Everything computed from the Gram matrices is element-wise, so the p×p outputs of
    :func:`cscore` are exactly symmetric too.
    """
    if a.device.type == "cpu" and a.dtype in (torch.float32, torch.float64):
        an = a.numpy()
        return torch.from_numpy(an.T @ an)
    g = a.T @ a
    return g.add_(g.T.clone()).mul_(0.5)


def _log_change(theta: torch.Tensor, theta_prev: torch.Tensor) -> float | None:
    """Largest |log θ − log θprev| over genes positive (and finite) in both passes; None if none."""
    ok = (theta > 0) & (theta_prev > 0) & torch.isfinite(theta) & torch.isfinite(theta_prev)
    if not bool(ok.any()):
        return None
    return float((theta[ok].log() - theta_prev[ok].log()).abs().max())


@dataclass
class _Moments:
    """State of the IRLS: per-gene moments plus the fitted means and residuals."""

    mu: torch.Tensor
    sigma2: torch.Tensor
    m: torch.Tensor  # s μᵀ
    r: torch.Tensor  # X − M
    n_iter: int


def _ols_start(x: torch.Tensor, s: torch.Tensor, s2: torch.Tensor) -> _Moments:
    """Unweighted moment regressions: the IRLS starting point (spec §1.2)."""
    mu = (s @ x) / s2.sum()
    m = torch.outer(s, mu)
    r = x - m
    sigma2 = (s2 @ (r.square() - m)) / s2.square().sum()
    return _Moments(mu, sigma2, m, r, 0)


def _irls(x: torch.Tensor, s: torch.Tensor, max_iter: int, tol: float) -> _Moments:
    """Re-weight the mean and variance regressions until θ = μ²/σ² stabilises.

    The weights approximate the negative-binomial variances of ``x`` and of the squared
    residuals with one shared size ``θ̄``, which keeps them well defined for genes
    whose own θ is negative or huge.
    """
    s2 = s.square()
    s4 = s2.square()
    st = _ols_start(x, s, s2)
    theta = st.mu.square() / st.sigma2
    delta = math.inf
    while delta > tol and st.n_iter <= max_iter:
        theta_bar = _positive_median(theta)
        if theta_bar is None:  # nothing to weight by: keep the current estimates
            break
        theta_prev = theta
        inv_w = _nb_weights(st.m, s2, st.mu, theta_bar).reciprocal_()
        mu = (s @ (x * inv_w)) / (s2 @ inv_w)
        del inv_w
        m = torch.outer(s, mu)
        r = x - m
        inv_h = _positive_or_one((m / theta_bar + 1.0).mul_(m).square_()).reciprocal_()
        sigma2 = (s2 @ (r.square().sub_(m).mul_(inv_h))) / (s4 @ inv_h)
        st = _Moments(mu, sigma2, m, r, st.n_iter + 1)
        theta = mu.square() / sigma2
        change = _log_change(theta, theta_prev)
        if change is None:  # R stops when no gene is positive in both passes
            break
        delta = change
    return st


def _pair_products(r: torch.Tensor, v: torch.Tensor, s: torch.Tensor, s2: torch.Tensor):
    """``Σ_i s_i² R_ij R_ik/(V_ij V_ik)`` and ``Σ_i s_i⁴/(V_ij V_ik)`` for all pairs at once.

    Writing ``A = s·R ⊘ V`` and ``B = s² ⊘ V`` turns both sums into ``AᵀA`` and ``BᵀB``.
    """
    inv_v = v.reciprocal()
    a = (r * inv_v).mul_(s[:, None])
    num = _gram(a)
    del a
    return num, _gram(inv_v.mul_(s2[:, None]))


def _correlation(
    sigma_hat: torch.Tensor, sigma2: torch.Tensor, bad: torch.Tensor, post_process: bool
) -> torch.Tensor:
    """Scale the covariances to correlations; optionally zero bad genes and clip (spec §1.4).

    A bad gene's standard deviation is set to +inf when post-processing, so its row and
    column come out exactly 0 in one division (σ̂ is always finite); without
    post-processing it is NaN, as in the Python reference.
    """
    fill = math.inf if post_process else math.nan
    sd = torch.where(bad, fill, sigma2).sqrt()
    est = sigma_hat / torch.outer(sd, sd)
    if post_process:
        est.fill_diagonal_(1.0).clamp_(-1.0, 1.0)
    return est


def cscore(
    counts,
    seq_depth,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float64,
    max_iter: int = 10,
    tol: float = 0.05,
    post_process: bool = True,
) -> CSCoreResult:
    """Estimate latent gene-gene correlations and test them, for all pairs at once.

    Parameters
    ----------
    counts:
        Raw counts, cells × genes (NumPy, SciPy sparse or torch). Densified on ``device``.
    seq_depth:
        Per-cell sequencing depth ``s_i > 0`` (total UMIs), *not* normalised.
    device:
        Torch device; default CUDA when available, else CPU.
    dtype:
        float64 by default: ``s⁴`` reaches 1e16-1e18 and the sums cancel in sign.
    max_iter, tol:
        IRLS runs while the largest log-change of θ exceeds ``tol`` and at most
        ``max_iter + 1`` passes (the references' ``while delta > 0.05 and j <= 10``).
    post_process:
        Zero rows/columns of genes with non-positive or non-finite variance, set the
        diagonal to 1 and clip to [-1, 1].
    """
    dev = torch.device(device) if device is not None else default_device()
    x = _to_dense_tensor(counts, dev, dtype)
    s = _to_dense_tensor(seq_depth, dev, dtype).reshape(-1)
    if x.ndim != 2 or s.shape[0] != x.shape[0]:
        raise ValueError(
            f"counts must be cells × genes and seq_depth one value per cell; "
            f"got {tuple(x.shape)} and {tuple(s.shape)}"
        )
    if not bool((s > 0).all()):
        raise ValueError("every sequencing depth must be positive")
    with _exact_matmul(dev), _single_torch_thread(dev):
        return _cscore(x, s, max_iter, tol, post_process)


def _cscore(
    x: torch.Tensor, s: torch.Tensor, max_iter: int, tol: float, post_process: bool
) -> CSCoreResult:
    """Body of :func:`cscore` on validated tensors."""
    s2 = s.square()
    st = _irls(x, s, max_iter, tol)
    theta = st.mu.square() / st.sigma2
    w = _nb_weights(st.m, s2, st.mu, _positive_median(theta))
    num, den = _pair_products(st.r, w, s, s2)
    sigma_hat = num / den
    bad = ~(torch.isfinite(st.sigma2) & (st.sigma2 > 0))
    est = _correlation(sigma_hat, st.sigma2, bad, post_process)
    # Test statistic: model variances V = M + s² σ, deliberately unclipped (spec §1.5).
    v = torch.addr(st.m, s2, st.sigma2)
    num, den = _pair_products(st.r, v, s, s2)
    stat = num / den.sqrt()
    p_value = torch.special.erfc(stat.abs() / math.sqrt(2.0))
    return CSCoreResult(
        est=est.cpu().numpy(),
        p_value=p_value.cpu().numpy(),
        test_stat=stat.cpu().numpy(),
        mu=st.mu.cpu().numpy(),
        sigma2=st.sigma2.cpu().numpy(),
        n_iter=st.n_iter,
        negative_variance=bad.cpu().numpy(),
    )


def _benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values of a 1-D array of finite p-values (step-up, capped at 1)."""
    m = p.size
    if m == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty_like(adj)
    out[order] = np.minimum(adj, 1.0)
    return out


def _as_numpy(a) -> np.ndarray:
    """NumPy view of a NumPy array or (CPU/GPU) tensor."""
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def coexpression_adjacency(
    p_value,
    *,
    threshold: float = 0.005,
    method: Literal["raw", "bh"] = "raw",
    self_loops: bool = True,
) -> sp.csr_matrix:
    """MuSe-GNN's edge rule: a symmetric boolean adjacency with ``p < threshold``.

    ``method="raw"`` is the faithful rule (no correction; it grows denser with more
    cells). ``method="bh"`` applies Benjamini-Hochberg over the upper-triangle
    off-diagonal pairs with a finite p-value (NaN pairs do not count towards m, as in
    R's ``p.adjust``), and thresholds the adjusted values, which gives a sparser graph.

    The comparison is strict and NaN never makes an edge. With ``self_loops`` every
    gene gets a self-loop (the reference keeps the diagonal, whose p is ~0); without,
    the diagonal is empty. Only the upper triangle is read, then mirrored, so the
    result is symmetric even if the input is not exactly so.
    """
    p = _as_numpy(p_value).astype(np.float64, copy=False)
    if p.ndim != 2 or p.shape[0] != p.shape[1]:
        raise ValueError(f"p_value must be a square matrix, got shape {p.shape}")
    if method not in ("raw", "bh"):
        raise ValueError(f"method must be 'raw' or 'bh', got {method!r}")
    n = p.shape[0]
    iu, ju = np.triu_indices(n, k=1)
    pu = p[iu, ju]
    finite = np.isfinite(pu)
    values = np.full(pu.shape, np.nan)
    values[finite] = _benjamini_hochberg(pu[finite]) if method == "bh" else pu[finite]
    keep = finite & (values < threshold)  # NaN compares False: no edge
    rows = np.concatenate([iu[keep], ju[keep]])
    cols = np.concatenate([ju[keep], iu[keep]])
    if self_loops:
        diag = np.arange(n)
        rows, cols = np.concatenate([rows, diag]), np.concatenate([cols, diag])
    data = np.ones(rows.size, dtype=bool)
    return sp.csr_matrix((data, (rows, cols)), shape=(n, n), dtype=bool)

"""A plain NumPy CS-CORE, written the way the reference Python package is, for comparison.

Two uses:

- a speed baseline for the torch implementation in ``musegnn_core.graphs.cscore``
  (``python benchmarks/cscore_numpy_reference.py`` times both on simulated counts);
- an independent cross-check in the tests: it is written from the specification
  (``shared/docs/cscore-sparkx.md`` §1) line by line, without sharing code with the
  torch version, so agreement to ~1e-10 means both follow the same equations.

It keeps the R package's convergence rule (genes negative in the previous pass are
left out of the δ) and the accurate ``erfc`` p-value tail, like the torch version.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import special, stats


def cscore_numpy(x: np.ndarray, s: np.ndarray, max_iter: int = 10, tol: float = 0.05) -> dict:
    """CS-CORE on dense cells × genes counts ``x`` and depths ``s``; returns a dict of arrays."""
    x = np.asarray(x, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    s2 = s**2
    s4 = s2**2
    mu = s @ x / s2.sum()
    m = np.outer(s, mu)
    r = x - m
    sigma2 = s2 @ (r**2 - m) / s4.sum()
    theta = mu**2 / sigma2
    n_iter, delta = 0, np.inf
    while delta > tol and n_iter <= max_iter:
        positive = theta[(theta > 0) & np.isfinite(theta)]
        if positive.size == 0:
            break
        theta_bar = np.quantile(positive, 0.5)
        theta_prev = theta.copy()
        w = m + np.outer(s2, mu**2 / theta_bar)
        w[~(w > 0)] = 1.0
        mu = (s @ (x / w)) / (s2 @ (1.0 / w))
        m = np.outer(s, mu)
        r = x - m
        h = (m**2 / theta_bar + m) ** 2
        h[~(h > 0)] = 1.0
        sigma2 = (s2 @ ((r**2 - m) / h)) / (s4 @ (1.0 / h))
        theta = mu**2 / sigma2
        n_iter += 1
        both = (theta > 0) & (theta_prev > 0) & np.isfinite(theta) & np.isfinite(theta_prev)
        if not both.any():
            break
        delta = np.max(np.abs(np.log(theta[both]) - np.log(theta_prev[both])))

    positive = theta[(theta > 0) & np.isfinite(theta)]
    extra = np.outer(s2, mu**2 / np.quantile(positive, 0.5)) if positive.size else 0.0
    w = m + extra
    w[~(w > 0)] = 1.0
    xw = r / w
    num = xw.T @ (s2[:, None] * xw)
    bw = s2[:, None] / w
    den = bw.T @ bw
    covar = num / den

    bad = ~(np.isfinite(sigma2) & (sigma2 > 0))
    sd = np.sqrt(np.where(bad, np.nan, sigma2))
    est = covar / np.outer(sd, sd)
    est[bad, :] = 0.0
    est[:, bad] = 0.0
    np.fill_diagonal(est, 1.0)
    est = np.clip(est, -1.0, 1.0)

    v = m + np.outer(s2, sigma2)
    xv = r / v
    num = xv.T @ (s2[:, None] * xv)
    bv = s2[:, None] / v
    with np.errstate(invalid="ignore"):
        stat = num / np.sqrt(bv.T @ bv)
    p_value = special.erfc(np.abs(stat) / np.sqrt(2.0))
    return {
        "est": est,
        "p_value": p_value,
        "test_stat": stat,
        "mu": mu,
        "sigma2": sigma2,
        "n_iter": n_iter,
    }


def simulate_counts(n_cells: int, n_genes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gamma-Poisson counts with log-normal depths and a Gaussian-copula block correlation."""
    rng = np.random.default_rng(seed)
    depth = np.maximum(rng.lognormal(np.log(4000), 0.5, n_cells), 400)
    block = np.arange(n_genes) // 50
    corr = np.where(block[:, None] == block[None, :], 0.3, 0.0)
    np.fill_diagonal(corr, 1.0)
    z = rng.standard_normal((n_cells, n_genes)) @ np.linalg.cholesky(corr).T
    mean = rng.lognormal(np.log(2e-4), 1.0, n_genes)
    shape = 2.0
    latent = stats.gamma.ppf(stats.norm.cdf(z), a=shape, scale=mean / shape)
    counts = rng.poisson(depth[:, None] * latent)
    return counts.astype(np.float64), depth


def _best_of(fn, repeats: int) -> float:
    """Smallest wall time of ``repeats`` calls: the least disturbed run."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    """Time the torch CS-CORE against this NumPy one and check they agree."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import torch

    from musegnn_core.graphs.cscore import cscore

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--cells", type=int, default=2000)
    parser.add_argument("--genes", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    x, s = simulate_counts(args.cells, args.genes)
    ref = cscore_numpy(x, s)
    res = cscore(x, s, device="cpu")
    diff = np.nanmax(np.abs(ref["p_value"] - res.p_value))
    t_np = _best_of(lambda: cscore_numpy(x, s), args.repeats)
    t_torch = _best_of(lambda: cscore(x, s, device="cpu"), args.repeats)
    print(f"{args.cells} cells x {args.genes} genes, torch threads={torch.get_num_threads()}")
    print(f"numpy reference : {t_np:.3f} s")
    print(f"torch (cpu)     : {t_torch:.3f} s")
    print(f"numpy / torch   : {t_np / t_torch:.2f}x")
    print(f"max |p diff|    : {diff:.2e}; n_iter {ref['n_iter']} vs {res.n_iter}")
    if torch.cuda.is_available():
        cscore(x, s, device="cuda")
        t_gpu = _best_of(lambda: cscore(x, s, device="cuda"), args.repeats)
        print(f"torch (cuda)    : {t_gpu:.3f} s; numpy / cuda {t_np / t_gpu:.1f}x")


if __name__ == "__main__":
    main()

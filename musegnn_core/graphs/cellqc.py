"""Per-cell quality numbers of an imported dataset, for plots and tables.

The same metrics and default thresholds as graph building (:mod:`musegnn_core.graphs.qc`),
so what a plot marks as failing is what the graph builder will drop.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..workspace import Workspace
from .qc import (
    as_csr,
    compute_cell_metrics,
    default_qc_config,
    flag_cells,
    is_mitochondrial,
)


def cell_qc_table(workspace: Workspace, dataset: str) -> pd.DataFrame:
    """One row per cell (or spot) of ``dataset``.

    Columns: ``cell``, ``total_counts``, ``n_genes_by_counts``, ``pct_counts_mt``,
    ``passes_qc`` (the default QC of graph building), ``qc_failed`` (the reasons, ';'-
    separated, '' when it passes), and ``x``, ``y`` for datasets with spot coordinates
    (``obsm['spatial']``). ``attrs['thresholds']`` holds the effective QC bounds.
    """
    meta = workspace.dataset(dataset)
    adata = workspace.load_dataset(dataset)
    x = as_csr(adata.X)
    metrics = compute_cell_metrics(x, is_mitochondrial(adata.var_names, meta.species))
    failed, thresholds = flag_cells(metrics, default_qc_config(meta.modality))
    reasons = np.array(
        [";".join(name for name, mask in failed.items() if mask[i]) for i in range(adata.n_obs)],
        dtype=object,
    )
    table = pd.DataFrame(
        {
            "cell": np.asarray(adata.obs_names, dtype=str),
            "total_counts": metrics["total_counts"],
            "n_genes_by_counts": metrics["n_genes_by_counts"],
            "pct_counts_mt": metrics["pct_counts_mt"],
            "passes_qc": reasons == "",
            "qc_failed": reasons,
        }
    )
    if "spatial" in adata.obsm:
        coords = np.asarray(adata.obsm["spatial"], dtype=float)
        table["x"], table["y"] = coords[:, 0], coords[:, 1]
    table.attrs["thresholds"] = thresholds
    table.attrs["modality"] = meta.modality
    return table

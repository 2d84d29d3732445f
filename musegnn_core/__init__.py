"""MuSe-GNN Studio core: data -> graphs -> model/train -> embed/analyse -> enrich/metrics.

The core never imports streamlit; the pages and the CLI (``python -m musegnn_core``)
call the same functions.
"""

__version__ = "0.1.0"

"""MuSe-GNN Studio core: data -> graphs -> model/train -> embed/analyse -> enrich/metrics.

The core never imports streamlit; the pages and the CLI (``python -m musegnn_core``)
call the same functions.
"""

__version__ = "0.1.0"


def software_versions(*packages: str) -> dict[str, str]:
    """Installed versions of ``packages`` (and of this app), recorded with every result."""
    from importlib.metadata import version

    return {"musegnn-studio": __version__, **{name: version(name) for name in packages}}

"""MuSe-GNN Studio core: data -> graphs -> model/train -> embed/analyse -> enrich/metrics.

The core never imports streamlit; the pages, the CLI (``musegnn`` or
``python -m musegnn_core``) and the notebook API (``musegnn_core.fit`` and the
workspace functions of :mod:`musegnn_core.api`) call the same functions.
"""

__version__ = "0.1.0"

#: The notebook API: ``musegnn_core.fit`` and the workspace functions in
#: ``musegnn_core.api`` (``api.train`` cannot live here: ``musegnn_core.train`` is the
#: training module). Loaded on first use, so that importing a light module
#: (``musegnn_core.settings``) never loads torch or anndata.
__all__ = ["__version__", "api", "fit", "software_versions"]


def __getattr__(name: str):
    if name in ("api", "fit"):
        import importlib

        api = importlib.import_module(f"{__name__}.api")
        return api if name == "api" else api.fit
    raise AttributeError(f"module 'musegnn_core' has no attribute {name!r}")


def software_versions(*packages: str) -> dict[str, str]:
    """Installed versions of ``packages`` (and of this app), recorded with every result."""
    from importlib.metadata import version

    return {"musegnn-studio": __version__, **{name: version(name) for name in packages}}

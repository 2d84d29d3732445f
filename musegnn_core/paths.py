"""Where things live: the workspace and the optional shared real-data folder.

Both are configurable through environment variables so that the app, the CLI,
the tests and the benchmarks agree on them without constants scattered around.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The project root (the folder holding app.py).
PROJECT_ROOT = Path(__file__).resolve().parent.parent

WORKSPACE_ENV = "MUSEGNN_WORKSPACE"
SHARED_DATA_ENV = "MUSEGNN_SHARED_DATA"
DEMO_DATA_ENV = "MUSEGNN_DEMO_DATA"


def default_workspace() -> Path:
    """The workspace used when none is given: ``$MUSEGNN_WORKSPACE`` or ``./workspace``."""
    env = os.environ.get(WORKSPACE_ENV)
    return Path(env).expanduser() if env else Path.cwd() / "workspace"


def shared_data_dir() -> Path | None:
    """The shared real-data folder (``../shared/data`` beside the project), if present.

    ``$MUSEGNN_SHARED_DATA`` overrides the location; an empty value disables it.
    """
    env = os.environ.get(SHARED_DATA_ENV)
    path = Path(env).expanduser() if env is not None else PROJECT_ROOT.parent / "shared" / "data"
    return path if env != "" and path.is_dir() else None


def demo_atlas_dir() -> Path | None:
    """Folder of real h5ad datasets used for the demo (``$MUSEGNN_DEMO_DATA`` or shared atlas)."""
    env = os.environ.get(DEMO_DATA_ENV)
    if env is not None:
        path = Path(env).expanduser()
        return path if env != "" and path.is_dir() else None
    shared = shared_data_dir()
    atlas = shared / "atlas" if shared else None
    return atlas if atlas is not None and atlas.is_dir() else None

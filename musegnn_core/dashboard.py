"""Starting the dashboard (``musegnn app``): Streamlit on the checkout's ``app.py``.

The pages are not part of the installed package; they run from a checkout of the
repository (``pip install -e .`` there, or ``make run``). Streamlit runs in the checkout
folder so that its ``.streamlit/config.toml`` (localhost only, XSRF protection, upload
cap) applies, and with the thread settings of :mod:`musegnn_core.threads`, since the
app builds graphs and clusters in its own process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from .errors import ValidationError
from .paths import PROJECT_ROOT, WORKSPACE_ENV
from .threads import child_environment


def find_checkout(start: Path | None = None) -> Path:
    """The checkout holding ``app.py`` and ``pages/``: this package's, else ``start`` (cwd)."""
    for folder in (PROJECT_ROOT, (start or Path.cwd()).resolve()):
        if (folder / "app.py").is_file() and (folder / "pages").is_dir():
            return folder
    raise ValidationError(
        "The dashboard runs from a checkout of the MuSe-GNN Studio repository (app.py and "
        "pages/ are not installed with the package): clone it, then run `musegnn app` "
        "inside it, or `pip install -e .` there."
    )


def app_command(checkout: Path, port: int | None = None) -> list[str]:
    command = [sys.executable, "-m", "streamlit", "run", str(checkout / "app.py")]
    if port is not None:
        command += ["--server.port", str(port)]
    return command


def run_app(
    workspace: Path | None = None, port: int | None = None, start: Path | None = None
) -> int:
    """Run the dashboard until it is stopped (Ctrl-C); returns Streamlit's exit status."""
    if port is not None and not 1 <= port <= 65535:
        raise ValidationError(f"--port must be between 1 and 65535, not {port}.")
    checkout = find_checkout(start)
    extra = {WORKSPACE_ENV: str(Path(workspace).expanduser().resolve())} if workspace else {}
    return subprocess.call(
        app_command(checkout, port), cwd=checkout, env=child_environment(**extra)
    )

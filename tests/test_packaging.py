"""The installable package: ``pip install .`` in a fresh virtual environment, the ``musegnn``
console script, the README's notebook example, and ``musegnn app``.

The fresh environment gets the project by ``pip install --no-deps`` from a copy of the
source (so the checkout stays free of build folders); the dependencies, already installed
in the test's own environment, are made visible to it through a ``.pth`` file instead of
being downloaded again, and ``pip check`` confirms they satisfy what the package declares.
Nothing from the checkout is importable there: the code that runs is the installed copy.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import site
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from musegnn_core.paths import PROJECT_ROOT
from tests.conftest import SHARED, requires_shared_data

pytestmark = pytest.mark.slow
SOURCE_FILES = ("pyproject.toml", "README.md", "requirements.txt", "musegnn_core")


def plain_environment(**extra: str) -> dict[str, str]:
    """The environment without anything pointing at the checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", **extra}


def run(command: list, cwd: Path, timeout: float = 600, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        env=plain_environment(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def copy_source(target: Path) -> Path:
    """What an sdist holds, copied, so that building never writes into the checkout."""
    target.mkdir(parents=True)
    for name in SOURCE_FILES:
        origin = PROJECT_ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(origin, target / name)
    return target


def fresh_venv(root: Path, source: Path, *pip_options: str) -> Path:
    """A new venv, then ``pip install --no-deps [options] source`` in it; returns its bin/."""
    venv = root / "venv"
    # No pip of its own: pip and setuptools come, like the dependencies, from the .pth below.
    done = run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=root)
    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], root)
    # The test environment's packages (torch, scanpy, ..., pip and setuptools).
    (Path(purelib.stdout.strip()) / "test-environment.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n"
    )
    offline = ("--no-deps", "--no-build-isolation", "--no-index")
    done = run([python, "-m", "pip", "install", *offline, *pip_options, source], cwd=root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return venv / "bin"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """A fresh venv with the project installed by ``pip install --no-deps``."""
    root = tmp_path_factory.mktemp("fresh-install")
    source = copy_source(root / "source")
    bin_dir = fresh_venv(root, source)
    work = root / "work"
    work.mkdir()
    return {"python": bin_dir / "python", "bin": bin_dir, "work": work, "source": source}


def test_editable_install_runs_the_source_folder(tmp_path):
    source = copy_source(tmp_path / "checkout")
    bin_dir = fresh_venv(tmp_path, source, "--editable")
    code = "import musegnn_core; print(musegnn_core.__file__)"
    where = run([bin_dir / "python", "-c", code], cwd=tmp_path)
    assert where.stdout.strip() == str(source / "musegnn_core" / "__init__.py"), where.stderr
    help_text = run([bin_dir / "musegnn", "--help"], cwd=tmp_path)
    assert help_text.returncode == 0 and "build-graphs" in help_text.stdout, help_text.stderr


def test_pip_install_gives_the_console_script_and_the_installed_package(installed):
    work = installed["work"]
    help_text = run([installed["bin"] / "musegnn", "--help"], cwd=work)
    assert help_text.returncode == 0, help_text.stderr
    for command in ("import", "build-graphs", "train", "evaluate", "enrich", "app"):
        assert command in help_text.stdout, command
    same = run([installed["python"], "-m", "musegnn_core", "--help"], cwd=work)
    assert same.stdout == help_text.stdout
    where = run(
        [installed["python"], "-c", "import musegnn_core, sys; print(musegnn_core.__file__)"],
        cwd=work,
    )
    assert "site-packages" in where.stdout and str(PROJECT_ROOT) not in where.stdout
    version = run([installed["bin"] / "musegnn", "--version"], cwd=work)
    assert version.stdout.strip() == "musegnn-studio 0.1.0", version.stdout
    check = run([installed["python"], "-m", "pip", "check"], cwd=work)
    declared = run(
        [
            installed["python"],
            "-c",
            "from importlib.metadata import requires; print('\\n'.join(requires('musegnn-studio')))",
        ],
        cwd=work,
    )
    pinned = [
        line
        for line in (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert declared.stdout.split() == pinned  # requirements.txt is the one list
    problems = [line for line in check.stdout.splitlines() if line.startswith("musegnn-studio")]
    assert not problems, check.stdout


def test_only_the_core_is_installed(installed):
    """Explicit package discovery: musegnn_core and its subpackages, not pages/ or assets/."""
    listing = run(
        [installed["python"], "-m", "pip", "show", "-f", "musegnn-studio"], installed["work"]
    )
    files = {line.strip() for line in listing.stdout.splitlines()}
    for module in ("api.py", "graphs/build.py", "model/module.py", "data/importer.py"):
        assert f"musegnn_core/{module}" in files, module
    assert not [f for f in files if f.startswith(("pages/", "assets/", "app.py", "tests/"))]


def readme_fit_example() -> str:
    """The Python block of README's "In a notebook" section."""
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text.split("## In a notebook", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "README's notebook section has no python example"
    return blocks[0]


@requires_shared_data
def test_readme_fit_example_runs_in_the_fresh_environment(installed, tmp_path):
    """The README's example, as written, on the shared atlas (its ``../shared/data``)."""
    code = readme_fit_example()
    assert "mg.fit(" in code and "epochs=2" in code
    # The example reads ../shared/data/atlas: run it from a folder where that resolves.
    (tmp_path / "shared").symlink_to(SHARED.parent, target_is_directory=True)
    work = tmp_path / "notebook"
    work.mkdir()
    check = (
        "\nassert embedding.n_obs > 0 and embedding.obsm['X_umap'].shape[1] == 2\n"
        "assert {'gene', 'dataset', 'tissue', 'modality', 'species', 'leiden'} "
        "<= set(embedding.obs.columns)\n"
        "assert embedding.obs['dataset'].nunique() == 3\n"
        "print('EXAMPLE-OK', embedding.n_obs)\n"
    )
    script = work / "example.py"
    script.write_text(code + check)
    done = run(
        [installed["python"], script],
        cwd=work,
        timeout=1200,
        MUSEGNN_SHARED_DATA=str(SHARED),
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "EXAMPLE-OK" in done.stdout


# ------------------------------------------------------------------ musegnn app
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_musegnn_app_serves_the_dashboard(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "musegnn_core", "app", "--port", str(port), "-w", tmp_path / "ws"],
        cwd=tmp_path,
        env={**plain_environment(), "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline, body = time.monotonic() + 90, ""
        while time.monotonic() < deadline and process.poll() is None:
            try:
                url = f"http://127.0.0.1:{port}/_stcore/health"
                with urllib.request.urlopen(url, timeout=2) as response:
                    body = response.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert body == "ok", process.stdout.read() if process.poll() is not None else body
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_musegnn_app_outside_a_checkout_says_what_to_do(tmp_path, monkeypatch):
    from musegnn_core import dashboard
    from musegnn_core.errors import ValidationError

    monkeypatch.setattr(dashboard, "PROJECT_ROOT", tmp_path / "site-packages")
    with pytest.raises(ValidationError, match="checkout"):
        dashboard.find_checkout(tmp_path)
    assert dashboard.find_checkout(PROJECT_ROOT) == PROJECT_ROOT

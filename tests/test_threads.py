"""Thread settings applied before torch loads (musegnn_core.threads)."""

from __future__ import annotations

import os
import subprocess
import sys

from musegnn_core.paths import PROJECT_ROOT
from musegnn_core.threads import (
    THREAD_COUNT_ENVS,
    child_environment,
    configure_threads,
    thread_settings,
    usable_cores,
)


def test_usable_cores_follow_the_affinity():
    assert usable_cores() == len(os.sched_getaffinity(0))


def test_defaults_passive_waiting_and_one_thread_per_usable_core():
    settings = thread_settings({})
    assert settings["OMP_WAIT_POLICY"] == "PASSIVE"
    cores = str(usable_cores())
    assert all(settings[name] == cores for name in THREAD_COUNT_ENVS if name != "NUMBA_NUM_THREADS")


def test_values_already_set_are_kept_and_musegnn_threads_overrides_counts():
    env = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "1"}
    settings = thread_settings(env)
    assert "OMP_WAIT_POLICY" not in settings and "OMP_NUM_THREADS" not in settings
    assert settings["MKL_NUM_THREADS"] == str(usable_cores())
    override = thread_settings({**env, "MUSEGNN_THREADS": "3"})
    assert override["OMP_NUM_THREADS"] == "3" and override["MKL_NUM_THREADS"] == "3"
    for bad in ("0", "-2", "many", ""):
        assert thread_settings({"MUSEGNN_THREADS": bad})["OMP_NUM_THREADS"] == str(usable_cores())


def test_configure_a_mapping_and_a_child_environment():
    env = {"PATH": "/bin"}
    applied = configure_threads(env)
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and set(applied) <= set(env)
    child = child_environment({"PATH": "/bin", "OMP_NUM_THREADS": "1"}, RUN="x")
    assert child["OMP_NUM_THREADS"] == "1" and child["RUN"] == "x"
    assert child["OMP_WAIT_POLICY"] == "PASSIVE"


CHILD = """
import os, sys
sys.argv = ["musegnn", "list", "-w", sys.argv[1]]
from musegnn_core.__main__ import main
main()
import torch
print(os.environ["OMP_WAIT_POLICY"], os.environ["OMP_NUM_THREADS"], torch.get_num_threads())
"""


NOTEBOOK = """
import os
import musegnn_core as mg
mg.fit  # the notebook API, loaded on first use
import torch
print(os.environ["OMP_WAIT_POLICY"], os.environ["OMP_NUM_THREADS"], torch.get_num_threads())
"""


def _child_output(code: str, *args: str, **extra_env: str) -> str:
    """The last line a fresh Python prints running ``code``, with none of the thread
    variables of this session (which conftest.py set) in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_", "MUSEGNN_"))}
    env.update(PYTHONPATH=str(PROJECT_ROOT), **extra_env)
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1]


def test_the_command_line_sets_threads_before_torch(tmp_path):
    assert _child_output(CHILD, str(tmp_path / "ws"), MUSEGNN_THREADS="1") == "PASSIVE 1 1"


def test_the_notebook_api_sets_threads_before_torch():
    assert _child_output(NOTEBOOK, MUSEGNN_THREADS="1") == "PASSIVE 1 1"
    # what a user set in the notebook's environment is kept
    assert _child_output(NOTEBOOK, OMP_WAIT_POLICY="ACTIVE", OMP_NUM_THREADS="2") == "ACTIVE 2 2"


def test_the_test_session_sets_them_for_its_children():
    """conftest.py configures this process, so every child process inherits the settings."""
    assert all(name in os.environ for name in ("OMP_WAIT_POLICY", *THREAD_COUNT_ENVS))

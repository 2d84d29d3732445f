"""The command line: import, list, delete; errors are one line with exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from musegnn_core.cli import main
from musegnn_core.paths import PROJECT_ROOT
from tests.factories import make_counts, write_10x_mtx, write_h5ad


def run_cli(*args):
    """The real entry point in a subprocess, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "musegnn_core", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_import_and_list_json_subprocess(tmp_path):
    path = write_h5ad(make_counts(), tmp_path / "d.h5ad")
    ws = tmp_path / "ws"
    done = run_cli(
        "import",
        path,
        "--workspace",
        ws,
        "--species",
        "human",
        "--tissue",
        "lung",
        "--modality",
        "scrna",
        "--technology",
        "Smart-seq2",
    )
    assert done.returncode == 0, done.stderr
    assert "imported d: 60 cells x 40 genes" in done.stdout
    listed = run_cli("list", "--workspace", ws, "--json")
    [entry] = json.loads(listed.stdout)
    assert {
        k: entry[k]
        for k in ("name", "species", "tissue", "modality", "technology", "n_cells", "n_genes")
    } == {
        "name": "d",
        "species": "human",
        "tissue": "lung",
        "modality": "scrna",
        "technology": "Smart-seq2",
        "n_cells": 60,
        "n_genes": 40,
    }


@pytest.mark.parametrize(
    "args",
    [
        ["import", "/no/such/file.h5ad"],
        ["import", "--species", "martian", "x.h5ad"],
        ["list", "--bogus"],
        ["frobnicate"],
        [],
    ],
)
def test_errors_are_one_line_exit_2(tmp_path, args):
    done = run_cli(
        *args, *(["--workspace", tmp_path / "ws"] if args[:1] in (["import"], ["list"]) else [])
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    assert "Traceback" not in done.stderr


def test_in_process_commands(tmp_path, capsys):
    ws = tmp_path / "ws"
    folder = write_10x_mtx(make_counts(), tmp_path / "tenx", "v3")
    bad = tmp_path / "neg.csv"
    bad.write_text("gene,c1,c2\nA,-1,2\n")
    assert main(["import", str(folder), "-w", str(ws), "--name", "tenx", "--tissue", "blood"]) == 0
    assert main(["import", str(bad), "-w", str(ws)]) == 2
    assert "negative values" in capsys.readouterr().err
    assert main(["import", str(folder), str(folder), "-w", str(ws), "--name", "x"]) == 2
    assert main(["list", "-w", str(ws)]) == 0
    out = capsys.readouterr().out
    assert "tenx" in out and "blood" in out
    assert main(["delete", "tenx", "-w", str(ws)]) == 0
    assert main(["delete", "tenx", "-w", str(ws)]) == 2
    capsys.readouterr()
    assert main(["list", "-w", str(ws), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_workspace_from_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MUSEGNN_WORKSPACE", str(tmp_path / "envws"))
    path = write_h5ad(make_counts(), tmp_path / "e.h5ad")
    assert main(["import", str(path)]) == 0
    assert (tmp_path / "envws" / "datasets" / "e.h5ad").exists()

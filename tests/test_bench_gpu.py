"""benchmarks/bench_gpu.py in its CPU smoke mode: every part runs or skips cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def test_bench_gpu_smoke_runs_every_part_and_skips_the_gpu_ones(tmp_path):
    out = tmp_path / "rows.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MUSEGNN_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "benchmarks/bench_gpu.py", "--smoke", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads(out.read_text())
    parts = {row["part"] for row in rows}
    assert {"device", "cscore", "attention", "presets", "bf16", "end to end", "torchrun"} <= parts
    assert not [row for row in rows if row["item"] == "FAILED"]
    values = {(row["part"], row["item"]): row["value"] for row in rows}
    assert values[("presets", "quick s/epoch")] > 0
    assert values[("attention", "sparse products forward+backward ms")] > 0
    assert float(values[("attention", "max |output difference|")]) < 1e-4
    assert str(values[("end to end", "quick, 3 epochs")]).endswith(" s")
    if not torch.cuda.is_available():
        assert values[("bf16", "skipped")] == "bf16 autocast runs on CUDA only"
        assert ("torchrun", "skipped") in values
    assert "| part | item | value | note |" in done.stdout

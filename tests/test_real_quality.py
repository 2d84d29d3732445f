"""Acceptance on real data: the quick preset on the eight shared datasets beats the baselines.

Trains the quick preset (60 epochs, about 3-4 minutes on the 2-core machine) and evaluates it
against PCA, the graph autoencoder and a random embedding on the same graphs, with the shared
Hallmark and GO Biological Process libraries. This is the claim of the README's preset table.
"""

from __future__ import annotations

import json

import pytest

from musegnn_core.analysis.evaluate import evaluate_run
from musegnn_core.data.demo import fill_demo
from musegnn_core.train import make_config, train
from musegnn_core.workspace import Workspace
from tests.conftest import requires_shared_data

HALLMARK = "coherence:human_msigdb_hallmark_v7.0"
GO_BP = "coherence:human_enrichr_GO_Biological_Process_2021"


@pytest.mark.slow
@requires_shared_data
def test_quick_preset_beats_every_baseline_on_the_shared_atlas(tmp_path, monkeypatch):
    monkeypatch.delenv("MUSEGNN_DEMO_DATA", raising=False)
    ws = Workspace.open(tmp_path / "ws")
    kind, names = fill_demo(ws)
    assert kind == "shared-atlas" and len(names) == 8
    run = train(ws, make_config("quick"), run_name="quick")
    assert run.status()["state"] == "completed"
    table = evaluate_run(ws, "quick")
    print(table.round(3).to_string())
    print(f"evaluate: {table.attrs['seconds']:.1f} s; {table.attrs['common_gene_rule']}")
    for row in ("mean_of_six", HALLMARK, GO_BP):
        ours = table.loc[row, "musegnn"]
        for baseline in ("pca", "gae", "random"):
            assert ours > table.loc[row, baseline], (row, baseline, table.loc[row].to_dict())
    saved = json.loads((run.root / "evaluation.json").read_text())
    assert saved["table"]["musegnn"]["mean_of_six"] == table.loc["mean_of_six", "musegnn"]

"""`evaluate`: a run scored against baselines, written into the run folder."""

from __future__ import annotations

import json

import pytest

from musegnn_core.analysis.evaluate import evaluate_run
from musegnn_core.cli import main
from musegnn_core.data.demo import fill_demo, resources_dir
from musegnn_core.errors import ValidationError
from musegnn_core.graphs.build import GraphConfig
from musegnn_core.train import make_config, train
from musegnn_core.workspace import Workspace


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    ws = Workspace.open(tmp_path_factory.mktemp("eval") / "ws")
    fill_demo(ws, prefer_simulated=True)
    config = make_config(
        "quick", epochs=20, graph=GraphConfig(n_genes=150, selection="shared", edges_per_gene=30)
    )
    train(ws, config, run_name="r")
    return ws


def test_evaluate_table_and_files(trained):
    planted = resources_dir(trained) / "planted_modules.gmt"
    table = evaluate_run(trained, "r", ["pca", "random"], [planted])
    assert list(table.columns) == ["musegnn", "pca", "random"]
    for row in (
        "asw",
        "auc",
        "ilisi",
        "gc",
        "cgr",
        "no",
        "mean_of_six",
        "coherence:planted_modules",
        "prediction:planted_modules",
    ):
        assert row in table.index
    # The planted modules are what the simulator made co-expressed: the trained embedding
    # must place module partners closer than unrelated genes, unlike a random embedding.
    assert table.loc["coherence:planted_modules", "musegnn"] > 0.7
    assert abs(table.loc["coherence:planted_modules", "random"] - 0.5) < 0.1
    assert table.loc["auc", "musegnn"] > table.loc["auc", "random"]
    # Gene-level measures, two ways, for every method; edge AUC and alignment.
    for row in (
        "coherence_within:planted_modules",
        "coherence_unified:planted_modules",
        "edge_auc_median",
        "same_gene_cosine",
        "same_gene_percentile",
    ):
        assert row in table.index
    assert table.loc["coherence_within:planted_modules", "musegnn"] > 0.7
    assert table.loc["coherence_unified:planted_modules", "musegnn"] > 0.7
    assert abs(table.loc["coherence_unified:planted_modules", "random"] - 0.5) < 0.1
    assert table.loc["edge_auc_median", "musegnn"] > table.loc["edge_auc_median", "random"]
    assert (
        table.loc["same_gene_percentile", "musegnn"] < table.loc["same_gene_percentile", "random"]
    )
    stored = json.loads((trained.runs_dir / "r" / "evaluation.json").read_text())
    assert set(stored["table"]) == {"musegnn", "pca", "random"}
    assert (trained.runs_dir / "r" / "evaluation.csv").exists()


def test_evaluate_correlation_baselines(trained):
    planted = resources_dir(trained) / "planted_modules.gmt"
    table = evaluate_run(trained, "r", ["coexpression", "profile"], [planted])
    assert list(table.columns) == ["musegnn", "coexpression", "profile"]
    # Correlations have no shared space: no paper metrics, but every gene-level measure.
    for method in ("coexpression", "profile"):
        assert table.loc["asw", method] != table.loc["asw", method]  # NaN
        assert (
            table.loc["same_gene_percentile", method] != table.loc["same_gene_percentile", method]
        )
        assert table.loc["coherence_within:planted_modules", method] > 0.6
        assert table.loc["edge_auc_median", method] > 0.6  # edges come from co-expression
    # Profiles compare across datasets: pairs no dataset holds together get a score of their
    # own, where co-expression has no evidence (0).
    unified = "coherence_unified:planted_modules"
    assert table.loc[unified, "profile"] > 0.6


def test_evaluate_cli_and_errors(trained, capsys):
    assert (
        main(
            [
                "evaluate",
                "-w",
                str(trained.root),
                "--run",
                "r",
                "--baselines",
                "random",
                "--gene-sets",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"musegnn", "random"}
    assert main(["evaluate", "-w", str(trained.root), "--run", "nope"]) == 2
    assert main(["evaluate", "-w", str(trained.root), "--run", "r", "--baselines", "tsne"]) == 2
    with pytest.raises(ValidationError):
        evaluate_run(trained, "r", ["umap"])

"""The notebook API: ``musegnn_core.fit`` on AnnData objects and the workspace functions."""

from __future__ import annotations

import tempfile

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import musegnn_core as mg
from musegnn_core import api
from musegnn_core.data.simulate import gmt_lines, simulate_atlas
from musegnn_core.errors import MuseGNNError, ValidationError
from musegnn_core.runs import get_run
from musegnn_core.settings import make_config
from musegnn_core.workspace import Workspace

HUMAN = ("sim_scrna_human_blood_a", "sim_scrna_human_blood_b", "sim_scrna_human_pancreas")
SMALL = {"epochs": 2, "n_genes": 100, "seed": 0}


@pytest.fixture(scope="module")
def atlas():
    return simulate_atlas(seed=0)


@pytest.fixture(scope="module")
def adatas(atlas) -> list[ad.AnnData]:
    return [atlas.dataset(name).copy() for name in HUMAN]


def test_fit_returns_the_joint_embedding_and_leaves_no_workspace(
    adatas, tmp_path, monkeypatch, one_torch_thread
):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the temporary one goes
    embedding = mg.fit(adatas, preset="quick", **SMALL)
    assert isinstance(embedding, ad.AnnData)
    for column in ("gene", "dataset", "tissue", "modality", "species", "leiden"):
        assert column in embedding.obs, column
    assert set(embedding.obs["dataset"]) == set(HUMAN)
    assert set(embedding.obs["tissue"]) == {"blood", "pancreas"}
    assert embedding.obsm["X_umap"].shape == (embedding.n_obs, 2)
    assert embedding.X.shape[1] == make_config("quick").model.embedding_dim
    assert np.isfinite(embedding.X).all()
    assert embedding.uns["musegnn"]["preset"] == "quick"
    assert embedding.uns["musegnn"]["settings"] == SMALL
    assert embedding.uns["musegnn"]["workspace"] is None
    assert not list(tmp_path.glob("musegnn-*"))  # the temporary workspace is gone
    # The caller's objects are not changed.
    assert all("leiden" not in a.obs for a in adatas)


def test_fit_in_a_kept_workspace_then_the_workspace_functions(
    atlas, adatas, tmp_path, one_torch_thread
):
    ws = tmp_path / "ws"
    embedding = mg.fit(
        adatas, workspace=ws, run_name="nb", tissue=["blood", "blood", "pancreas"], **SMALL
    )
    assert embedding.uns["musegnn"]["workspace"] == str(ws.resolve())
    assert embedding.uns["run"] == "nb"

    graphs = api.build_graphs(ws, preset="quick", n_genes=SMALL["n_genes"])
    assert list(graphs["dataset"]) == list(HUMAN) and graphs["cached"].all()

    table = api.clusters(ws, "nb")
    assert table["size"].sum() == embedding.n_obs
    first = str(table["cluster"].iloc[0])
    members = api.clusters(ws, "nb", cluster=first)
    assert len(members) > 0

    gene = str(embedding.obs["gene"].iloc[0])
    near = api.neighbors(ws, "nb", gene, top=5)
    assert len(near) == 5 and gene not in set(near["gene"])

    gmt = tmp_path / "modules.gmt"
    gmt.write_text("\n".join(gmt_lines(atlas)) + "\n")
    result = api.enrich(ws, "nb", cluster=first, gene_sets=[gmt])
    assert isinstance(result, pd.DataFrame)

    scores = api.evaluate(ws, "nb", baselines=["random"], gene_sets=[gmt])
    assert list(scores.columns) == ["musegnn", "random"]
    assert "mean_of_six" in scores.index and "coherence:modules" in scores.index

    again = api.train(ws, preset="quick", run_name="nb2", **SMALL)
    np.testing.assert_array_equal(again.X, embedding.X)  # same seed, same graphs
    with pytest.raises(ValidationError, match="own datasets and settings"):
        api.train(ws, run_name="nb2", resume=True, n_genes=50)
    longer = api.train(ws, run_name="nb2", resume=True, epochs=3)  # one more epoch
    assert get_run(Workspace(ws), "nb2").config()["train"]["epochs"] == 2  # as started
    assert len(get_run(Workspace(ws), "nb2").losses()) == 3 and longer.n_obs == again.n_obs


def test_fit_refuses_bad_input_before_any_work(adatas, tmp_path):
    ws = tmp_path / "ws"
    with pytest.raises(ValidationError, match="two or more"):
        mg.fit(adatas[:1], workspace=ws)
    with pytest.raises(ValidationError, match="epochs"):
        mg.fit(adatas, workspace=ws, epochs=0)
    with pytest.raises(ValidationError, match="Unknown training setting"):
        mg.fit(adatas, workspace=ws, not_a_setting=3)
    with pytest.raises(ValidationError, match="one name per dataset"):
        mg.fit(adatas, workspace=ws, name="x")
    with pytest.raises(ValidationError, match="2 values for 3"):
        mg.fit(adatas, workspace=ws, tissue=["a", "b"])
    assert not ws.exists()
    normalised = adatas[0].copy()
    normalised.X = normalised.X.astype(np.float32) * 0.37
    with pytest.raises(MuseGNNError, match="integer"):
        mg.fit([normalised, adatas[1]], workspace=ws)
    assert not any((ws / "datasets").iterdir())  # all or nothing

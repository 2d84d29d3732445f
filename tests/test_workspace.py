"""Workspace layout, catalog, and crash safety of every write."""

from __future__ import annotations

import json

import anndata as ad
import pytest

from musegnn_core.data.importer import ImportOptions, import_datasets, prepare_dataset
from musegnn_core.errors import MuseGNNError, ValidationError, WorkspaceError
from musegnn_core.storage import atomic_write_json, file_lock
from musegnn_core.workspace import Workspace
from tests.factories import make_counts, write_h5ad

META = {
    "name": "blood_a",
    "species": "human",
    "tissue": "blood",
    "modality": "scrna",
    "technology": "10x",
}


@pytest.fixture
def ws(tmp_path):
    return Workspace.open(tmp_path / "ws")


@pytest.fixture
def h5ad_file(tmp_path):
    return write_h5ad(make_counts(), tmp_path / "blood_a.h5ad", META)


def test_layout_is_readable(ws, h5ad_file):
    import_datasets(ws, [h5ad_file])
    assert (ws.root / "workspace.json").exists()
    catalog = json.loads((ws.root / "catalog.json").read_text())
    assert catalog["datasets"][0]["name"] == "blood_a"
    assert (ws.root / "catalog.csv").read_text().splitlines()[1].startswith("blood_a,human,blood")
    stored = ad.read_h5ad(ws.root / "datasets" / "blood_a.h5ad")
    assert dict(stored.uns["dataset"]) == META
    assert stored.shape == (60, 40)


def test_metadata_priority_user_then_file_then_guess(ws, tmp_path, h5ad_file):
    [item] = import_datasets(ws, [h5ad_file], ImportOptions(name="other", tissue="spleen"))
    assert (item.meta.name, item.meta.tissue, item.meta.technology) == ("other", "spleen", "10x")
    bare = write_h5ad(make_counts(species="mouse"), tmp_path / "bare.h5ad")
    [item] = import_datasets(ws, [bare])
    assert (item.meta.name, item.meta.species, item.meta.modality, item.meta.tissue) == (
        "bare",
        "mouse",
        "scrna",
        "unknown",
    )
    assert any("guessed mouse" in n for n in item.notes)


def test_spatial_requires_coordinates(ws, tmp_path):
    path = write_h5ad(make_counts(), tmp_path / "s.h5ad")
    with pytest.raises(ValidationError, match="coordinates"):
        import_datasets(ws, [path], ImportOptions(modality="spatial"))
    assert ws.datasets() == []


def test_name_clash_and_bad_names(ws, h5ad_file):
    import_datasets(ws, [h5ad_file])
    with pytest.raises(WorkspaceError, match="already exists"):
        import_datasets(ws, [h5ad_file])
    for bad in ("../evil", "a/b", ".hidden", "x" * 101):
        with pytest.raises(ValidationError, match="Invalid dataset name"):
            import_datasets(ws, [h5ad_file], ImportOptions(name=bad))
    assert ws.dataset_names() == ["blood_a"]


def test_multi_import_is_all_or_nothing(ws, tmp_path, h5ad_file):
    bad = tmp_path / "bad.csv"
    bad.write_text("gene,c1\nA,-1\n")
    with pytest.raises(MuseGNNError):
        import_datasets(ws, [h5ad_file, bad])
    assert ws.datasets() == []
    assert list((ws.root / "datasets").iterdir()) == []


def test_crash_while_writing_dataset_keeps_previous_state(ws, tmp_path, h5ad_file, monkeypatch):
    import_datasets(ws, [h5ad_file])
    before = (ws.root / "catalog.json").read_bytes()
    second = write_h5ad(make_counts(seed=1), tmp_path / "second.h5ad")
    prepared = prepare_dataset(second)

    def crash(self, path, **kwargs):
        path.write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ad.AnnData, "write_h5ad", crash)
    with pytest.raises(OSError):
        ws.add_datasets([(prepared.adata, prepared.meta)])
    assert (ws.root / "catalog.json").read_bytes() == before
    assert sorted(p.name for p in (ws.root / "datasets").iterdir()) == ["blood_a.h5ad"]


def test_crash_while_writing_catalog_keeps_previous_catalog(ws, tmp_path, h5ad_file, monkeypatch):
    import_datasets(ws, [h5ad_file])
    before = (ws.root / "catalog.json").read_bytes()
    second = write_h5ad(make_counts(seed=1), tmp_path / "second.h5ad")

    import musegnn_core.storage as storage

    real_replace = storage.os.replace

    def crash_on_catalog(src, dst):
        if str(dst).endswith("catalog.json"):
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(storage.os, "replace", crash_on_catalog)
    with pytest.raises(OSError):
        import_datasets(ws, [second])
    monkeypatch.undo()
    assert (ws.root / "catalog.json").read_bytes() == before
    assert ws.dataset_names() == ["blood_a"]
    assert not (ws.root / "datasets" / "second.h5ad").exists()
    assert not [p for p in ws.root.rglob(".tmp-*")]


def test_stale_temporaries_removed_on_open(ws):
    import os
    import time

    stale = ws.root / "datasets" / ".tmp-x.h5ad.123.h5ad"
    stale.write_bytes(b"partial")
    hours_ago = time.time() - 2 * 3600
    os.utime(stale, (hours_ago, hours_ago))
    fresh = ws.root / "runs" / ".tmp-checkpoint.pt.456.pt"  # another process writing now
    fresh.write_bytes(b"being written")
    Workspace.open(ws.root)
    assert not stale.exists()
    assert fresh.exists()


def test_delete(ws, h5ad_file):
    import_datasets(ws, [h5ad_file])
    (ws.graphs_dir / "blood_a").mkdir()
    ws.delete_dataset("blood_a")
    assert ws.datasets() == [] and not (ws.graphs_dir / "blood_a").exists()
    with pytest.raises(WorkspaceError, match="No dataset named"):
        ws.delete_dataset("blood_a")


def test_refuses_foreign_folders_and_newer_formats(tmp_path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.docx").write_text("precious")
    with pytest.raises(WorkspaceError, match="not a MuSe-GNN workspace"):
        Workspace.open(tmp_path / "home")
    (tmp_path / "file").write_text("x")
    with pytest.raises(WorkspaceError, match="is a file"):
        Workspace.open(tmp_path / "file")
    ws = Workspace.open(tmp_path / "new")
    atomic_write_json(ws.info_path, {"format": 99})
    with pytest.raises(WorkspaceError, match="newer"):
        Workspace.open(ws.root)


def test_file_lock_is_exclusive(tmp_path):
    with file_lock(tmp_path / "l") as held:
        assert held
        with file_lock(tmp_path / "l", blocking=False) as second:
            assert second is False
    with file_lock(tmp_path / "l", blocking=False) as again:
        assert again is True


def test_a_damaged_stored_dataset_is_named_in_a_clear_error(tmp_path):
    from musegnn_core.data.demo import fill_demo

    ws = Workspace.open(tmp_path / "ws")
    fill_demo(ws, prefer_simulated=True)
    name = ws.dataset_names()[0]
    ws.dataset_path(name).write_bytes(b"not hdf5" * 64)
    with pytest.raises(WorkspaceError, match=f"stored dataset '{name}'.*import it again"):
        ws.load_dataset(name)

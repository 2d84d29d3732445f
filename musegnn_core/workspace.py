"""The workspace: one folder a person can read and another tool can use.

Layout::

    workspace.json          format version, creation time, what demo filled it
    catalog.json            one entry per dataset (the source of truth)
    catalog.csv             the same, as a table for spreadsheets and R
    datasets/<name>.h5ad    raw counts, cells x genes, uns['dataset'] metadata
    graphs/<name>/          co-expression graphs built from a dataset
    runs/<run>/             one folder per training run
    .lock                   advisory lock serialising catalog updates

Every file is written atomically (:mod:`musegnn_core.storage`), and the catalog is
updated under a lock, so concurrent readers never see a half-written state.
"""

from __future__ import annotations

import contextlib
import csv
import io
import shutil
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import anndata as ad

from . import __version__
from .errors import WorkspaceError
from .metadata import DatasetMeta, check_name
from .storage import (
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    file_lock,
    read_json,
    remove_stale_temporaries,
)

FORMAT_VERSION = 1
CATALOG_COLUMNS = (
    "name",
    "species",
    "tissue",
    "modality",
    "technology",
    "n_cells",
    "n_genes",
    "has_spatial",
    "simulated",
    "rounded_non_integer",
    "source_format",
    "imported_at",
)


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


class Workspace:
    """A folder of datasets, graphs and runs."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()

    # -- layout ---------------------------------------------------------------
    @property
    def info_path(self) -> Path:
        return self.root / "workspace.json"

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.json"

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def graphs_dir(self) -> Path:
        return self.root / "graphs"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def lock_path(self) -> Path:
        return self.root / ".lock"

    @property
    def resources_dir(self) -> Path:
        """Workspace-local reference files: the simulated atlas's ortholog table and planted
        modules, uploaded gene-set libraries (``genesets/``), pinned genes."""
        return self.root / "resources"

    @property
    def genesets_dir(self) -> Path:
        """Uploaded GMT libraries; cached Enrichr libraries in ``enrichr/`` below."""
        return self.resources_dir / "genesets"

    @property
    def jobs_dir(self) -> Path:
        """Background jobs started from the app: ``<run>.json`` (record), ``.log``, ``.config.json``
        for trainings; ``evaluate/<run>.*`` for evaluations."""
        return self.root / "jobs"

    @property
    def training_lock_path(self) -> Path:
        """Held by the one training of the workspace while it runs."""
        return self.root / "training.lock"

    def job_path(self, run_name: str, suffix: str, kind: str = "train") -> Path:
        """A file of the ``kind`` job of a run (``run_name`` checked by the caller)."""
        folder = self.jobs_dir if kind == "train" else self.jobs_dir / kind
        return folder / f"{run_name}{suffix}"

    def dataset_path(self, name: str) -> Path:
        return self.datasets_dir / f"{check_name(name)}.h5ad"

    # -- opening --------------------------------------------------------------
    @classmethod
    def open(cls, root: str | Path, create: bool = True) -> Workspace:
        """Open (and by default create) the workspace at ``root``.

        A non-empty folder that is not a workspace is refused, so that pointing the
        app at, say, a home directory never scatters files there.
        """
        ws = cls(root)
        if ws.root.exists() and not ws.root.is_dir():
            raise WorkspaceError(f"{ws.root} is a file, not a workspace folder.")
        if not ws.info_path.exists():
            if ws.root.exists() and any(ws.root.iterdir()):
                raise WorkspaceError(
                    f"{ws.root} is not empty and is not a MuSe-GNN workspace (no workspace.json): "
                    "choose an empty or new folder."
                )
            if not create:
                raise WorkspaceError(f"No workspace at {ws.root}.")
            ws._create()
        else:
            info = read_json(ws.info_path, {})
            if int(info.get("format", 0)) > FORMAT_VERSION:
                raise WorkspaceError(
                    f"{ws.root} was written by a newer MuSe-GNN Studio (format {info['format']}); "
                    "update the app to open it."
                )
            remove_stale_temporaries(ws.root)
        return ws

    def _create(self) -> None:
        for folder in (self.root, self.datasets_dir, self.graphs_dir, self.runs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        with file_lock(self.lock_path):
            if not self.info_path.exists():
                atomic_write_json(
                    self.info_path,
                    {
                        "format": FORMAT_VERSION,
                        "created_at": now_iso(),
                        "created_by": f"musegnn-studio {__version__}",
                        "demo": None,
                    },
                )
                self._write_catalog([])

    # -- workspace info -------------------------------------------------------
    def info(self) -> dict:
        return read_json(self.info_path, {})

    def update_info(self, **changes) -> dict:
        with file_lock(self.lock_path):
            info = self.info()
            info.update(changes)
            atomic_write_json(self.info_path, info)
        return info

    # -- catalog --------------------------------------------------------------
    def _read_catalog(self) -> list[DatasetMeta]:
        data = read_json(self.catalog_path, {"datasets": []})
        return [DatasetMeta.from_dict(entry) for entry in data.get("datasets", [])]

    def _write_catalog(self, entries: Iterable[DatasetMeta]) -> None:
        entries = list(entries)
        atomic_write_json(
            self.catalog_path,
            {
                "format": FORMAT_VERSION,
                "updated_at": now_iso(),
                "datasets": [entry.to_dict() for entry in entries],
            },
        )
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CATALOG_COLUMNS)
        for entry in entries:
            row = entry.to_dict()
            writer.writerow([row[c] for c in CATALOG_COLUMNS])
        atomic_write_text(self.root / "catalog.csv", buffer.getvalue())

    def datasets(self) -> list[DatasetMeta]:
        """Catalog entries whose data file exists, in import order."""
        return [m for m in self._read_catalog() if self.dataset_path(m.name).exists()]

    def dataset_names(self) -> list[str]:
        return [m.name for m in self.datasets()]

    def dataset(self, name: str) -> DatasetMeta:
        for meta in self.datasets():
            if meta.name == name:
                return meta
        known = ", ".join(self.dataset_names()) or "none"
        raise WorkspaceError(f"No dataset named {name!r} in this workspace (datasets: {known}).")

    def load_dataset(self, name: str) -> ad.AnnData:
        self.dataset(name)
        path = self.dataset_path(name)
        try:
            return ad.read_h5ad(path)
        except (OSError, KeyError, ValueError) as exc:  # h5py/anndata on a damaged file
            raise WorkspaceError(
                f"The stored dataset {name!r} ({path}) cannot be read ({exc}); the file is "
                "damaged: delete the dataset and import it again."
            ) from exc

    # -- changes --------------------------------------------------------------
    def add_datasets(self, items: list[tuple[ad.AnnData, DatasetMeta]]) -> list[DatasetMeta]:
        """Write the datasets, then publish them in the catalog in one atomic update.

        All or nothing: if any write fails, the files written so far are removed and
        the catalog is left as it was.
        """
        with file_lock(self.lock_path):
            existing = {m.name for m in self._read_catalog()}
            names = [meta.name for _, meta in items]
            clash = sorted(set(names) & existing) or sorted(
                {n for n in names if names.count(n) > 1}
            )
            if clash:
                raise WorkspaceError(
                    f"A dataset named {clash[0]!r} already exists: choose another name or delete "
                    "the existing one first."
                )
            written: list[Path] = []
            try:
                for adata, meta in items:
                    meta.imported_at = meta.imported_at or now_iso()
                    target = self.dataset_path(meta.name)
                    with atomic_path(target) as tmp:
                        adata.write_h5ad(tmp, compression="gzip")
                    written.append(target)
                self._write_catalog([*self._read_catalog(), *(meta for _, meta in items)])
            except BaseException:
                for path in written:
                    with contextlib.suppress(OSError):
                        path.unlink()
                raise
        return [meta for _, meta in items]

    def delete_dataset(self, name: str) -> None:
        """Remove a dataset, its cached graphs and its catalog entry (runs are kept)."""
        with file_lock(self.lock_path):
            entries = self._read_catalog()
            if name not in {m.name for m in entries}:
                raise WorkspaceError(f"No dataset named {name!r} in this workspace.")
            self._write_catalog([m for m in entries if m.name != name])
            with contextlib.suppress(FileNotFoundError):
                self.dataset_path(name).unlink()
            shutil.rmtree(self.graphs_dir / name, ignore_errors=True)

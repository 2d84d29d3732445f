"""Import count data into a workspace: read, validate, describe, then write atomically."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np

from ..errors import MuseGNNError, ValidationError
from ..metadata import (
    MODALITIES,
    SPECIES,
    DatasetMeta,
    check_name,
    normalise_choice,
    sanitize_name,
)
from ..workspace import Workspace
from .readers import read_coordinates, read_counts
from .validate import ImportLimits, validate_counts


@dataclass
class ImportOptions:
    """What the user says about the files; unset fields come from the file or a guess."""

    name: str | None = None
    species: str | None = None
    tissue: str | None = None
    modality: str | None = None
    technology: str | None = None
    allow_non_integer: bool = False
    orientation: str = "auto"
    coordinates: str | Path | None = None
    limits: ImportLimits = field(default_factory=ImportLimits)


@dataclass
class PreparedDataset:
    adata: ad.AnnData
    meta: DatasetMeta
    notes: list[str]


def guess_species(gene_names) -> tuple[str, str]:
    """Human symbols are upper case (ACTB), mouse symbols capitalised (Actb)."""
    names = [g for g in map(str, gene_names) if g[:1].isalpha() and any(c.isalpha() for c in g[1:])]
    if not names:
        return "other", "gene names are not symbols"
    upper = np.mean([g == g.upper() for g in names])
    capitalised = np.mean([g[0].isupper() and g[1:] != g[1:].upper() for g in names])
    if upper > 0.8:
        return "human", f"{upper:.0%} of gene symbols are upper case"
    if capitalised > 0.6:
        return "mouse", f"{capitalised:.0%} of gene symbols are capitalised"
    return "other", "gene symbols match neither human nor mouse conventions"


def default_name(path: Path) -> str:
    stem = path.name
    for suffix in (
        ".h5ad",
        ".h5",
        ".hdf5",
        ".csv.gz",
        ".tsv.gz",
        ".txt.gz",
        ".csv",
        ".tsv",
        ".txt",
    ):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return sanitize_name(stem) or "dataset"


def _describe(
    path: Path, file_meta: dict, options: ImportOptions, adata: ad.AnnData, notes: list[str]
) -> DatasetMeta:
    """Merge metadata: the user's options win, then uns['dataset'], then a labelled guess."""

    def pick(key: str) -> str | None:
        return getattr(options, key) or file_meta.get(key) or None

    name = check_name(options.name or file_meta.get("name") or default_name(path))
    species = pick("species")
    if species is None:
        species, why = guess_species(adata.var_names)
        notes.append(f"Species not given; guessed {species} because {why}.")
    species = normalise_choice(species, SPECIES, "species")
    modality = pick("modality")
    if modality is None:
        modality = "spatial" if "spatial" in adata.obsm else "scrna"
        notes.append(f"Modality not given; assumed {modality}.")
    modality = normalise_choice(modality, MODALITIES, "modality")
    if modality == "spatial" and "spatial" not in adata.obsm:
        raise ValidationError(
            f"{path.name} is marked spatial but has no spot coordinates: give a coordinates file "
            "(CSV of spot name, x, y) or store them in obsm['spatial']."
        )
    tissue = (pick("tissue") or "unknown").strip()
    technology = (pick("technology") or "unknown").strip()
    if tissue == "unknown":
        notes.append(
            "Tissue not given; recorded as 'unknown' (set it so groups are shared sensibly)."
        )
    return DatasetMeta(
        name=name,
        species=species,
        tissue=tissue,
        modality=modality,
        technology=technology,
        n_cells=int(adata.n_obs),
        n_genes=int(adata.n_vars),
        has_spatial="spatial" in adata.obsm,
        simulated=str(file_meta.get("simulated")) == "True",
        source=str(path.resolve()),
        notes=[],
    )


def prepare_dataset(path: str | Path, options: ImportOptions | None = None) -> PreparedDataset:
    """Read and validate one file without touching any workspace."""
    options = options or ImportOptions()
    path = Path(path).expanduser()
    result = read_counts(path, options.orientation)
    adata = result.adata
    if options.coordinates is not None:
        adata.obsm["spatial"] = read_coordinates(options.coordinates, adata.obs_names)
    adata, notes, rounded = validate_counts(
        adata, path.name, allow_non_integer=options.allow_non_integer, limits=options.limits
    )
    notes = result.notes + notes
    meta = _describe(path, result.metadata, options, adata, notes)
    meta.source_format = result.source_format
    meta.rounded_non_integer = rounded
    meta.notes = notes
    adata.uns["dataset"] = {
        k: getattr(meta, k) for k in ("name", "species", "tissue", "modality", "technology")
    }
    if meta.simulated:
        adata.uns["simulated"] = True
    return PreparedDataset(adata, meta, notes)


def import_datasets(
    workspace: Workspace, paths: list[str | Path], options: ImportOptions | None = None
) -> list[PreparedDataset]:
    """Import several files all-or-nothing: every file is validated before any is written."""
    options = options or ImportOptions()
    if not paths:
        raise MuseGNNError("No files given to import.")
    if options.name and len(paths) > 1:
        raise MuseGNNError(
            "A single --name cannot be given to several files; import them one by one."
        )
    if options.coordinates and len(paths) > 1:
        raise MuseGNNError(
            "A coordinates file belongs to one dataset; import spatial data one by one."
        )
    prepared = [prepare_dataset(p, options) for p in paths]
    workspace.add_datasets([(p.adata, p.meta) for p in prepared])
    return prepared

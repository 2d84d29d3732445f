"""Dataset metadata: the one definition of what the catalog records per dataset.

It sits beside the workspace (which stores it) because everything above reads it: the
importer, the graph builder, the pages.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import ValidationError

SPECIES = ("human", "mouse", "other")
MODALITIES = ("scrna", "spatial", "scatac")
MODALITY_LABELS = {"scrna": "scRNA-seq", "spatial": "Spatial", "scatac": "scATAC gene activity"}

# Names become file names; keep them portable and impossible to use for path traversal.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass
class DatasetMeta:
    """What the catalog knows about one imported dataset."""

    name: str
    species: str
    tissue: str
    modality: str
    technology: str
    n_cells: int = 0
    n_genes: int = 0
    has_spatial: bool = False
    simulated: bool = False
    rounded_non_integer: bool = False
    source: str = ""
    source_format: str = ""
    imported_at: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetMeta:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def sanitize_name(raw: str) -> str:
    """Turn a file name into a dataset name: safe characters only, no leading dot."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", raw.strip()).strip("._-")
    return cleaned[:100]


def check_name(name: str) -> str:
    if not _NAME_RE.match(name or "") or ".." in name:
        raise ValidationError(
            f"Invalid dataset name {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return name


def normalise_choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    key = (value or "").strip().lower()
    aliases = {
        "scrna-seq": "scrna",
        "scrnaseq": "scrna",
        "rna": "scrna",
        "atac": "scatac",
        "scatac-seq": "scatac",
        "st": "spatial",
        "visium": "spatial",
    }
    key = aliases.get(key, key)
    if key not in allowed:
        raise ValidationError(f"Unknown {what} {value!r}: choose one of {', '.join(allowed)}.")
    return key

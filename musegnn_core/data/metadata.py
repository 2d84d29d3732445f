"""Moved to :mod:`musegnn_core.metadata` (the catalog schema sits below the importer, beside
the workspace that stores it); this name keeps old imports working during the transition."""

from ..metadata import (  # noqa: F401 (re-exported)
    MODALITIES,
    MODALITY_LABELS,
    SPECIES,
    DatasetMeta,
    check_name,
    normalise_choice,
    sanitize_name,
)

"""Genes a person wants in the next run: the workspace's pinned-gene list.

A gene that is not in a run's embedding (not among the genes selected for any graph)
can be pinned; the Train page pre-fills the ``include_genes`` setting from this list, so
the next run's graphs keep it wherever it is expressed. The list is one symbol per line
in ``resources/pinned_genes.txt``, written atomically under the workspace lock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from .errors import ValidationError
from .storage import atomic_write_text, file_lock

_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
MAX_PINNED = 2000


def pinned_path(workspace) -> Path:
    return workspace.root / "resources" / "pinned_genes.txt"


def pinned_genes(workspace) -> list[str]:
    """The pinned genes, in the order they were pinned (empty when none)."""
    try:
        text = pinned_path(workspace).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    genes = [line.strip() for line in text.splitlines()]
    return list(dict.fromkeys(g for g in genes if g and not g.startswith("#") and _SYMBOL.match(g)))


def _checked(genes: Iterable[str]) -> list[str]:
    out = []
    for gene in genes:
        text = str(gene).strip()
        if not _SYMBOL.match(text):
            raise ValidationError(f"{text[:40]!r} is not a gene symbol; nothing was pinned.")
        out.append(text)
    return out


def _write(workspace, genes: list[str]) -> None:
    header = "# Genes to keep in the next run's graphs (one per line); see musegnn_core.pins\n"
    atomic_write_text(pinned_path(workspace), header + "".join(f"{g}\n" for g in genes))


def pin_genes(workspace, genes: Iterable[str]) -> list[str]:
    """Add ``genes`` to the pinned list (already pinned ones are kept once); returns the list."""
    new = _checked(genes)
    with file_lock(workspace.lock_path):
        current = pinned_genes(workspace)
        merged = list(dict.fromkeys([*current, *new]))
        if len(merged) > MAX_PINNED:
            raise ValidationError(f"At most {MAX_PINNED} genes can be pinned.")
        if merged != current:
            _write(workspace, merged)
    return merged


def unpin_genes(workspace, genes: Iterable[str]) -> list[str]:
    """Remove ``genes`` from the pinned list; returns the list."""
    drop = set(_checked(genes))
    with file_lock(workspace.lock_path):
        current = pinned_genes(workspace)
        kept = [g for g in current if g not in drop]
        if kept != current:
            _write(workspace, kept)
    return kept

"""Reading gene-set libraries in the GMT format (MSigDB, Enrichr).

One set per line, tab-separated: ``name <TAB> description <TAB> gene <TAB> gene ...``.
The description may be empty (Enrichr) or a URL (MSigDB). Blank lines are skipped, empty
gene fields (trailing tabs) ignored, Enrichr's weighted form ``GENE,1.0`` is read as
``GENE``, and duplicate genes within a set are dropped (first occurrence kept). A set
name given twice merges the two gene lists.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputFileError

#: Bytes read up front to recognise a binary file.
_SNIFF_BYTES = 8192


def read_gmt(path: str | Path) -> dict[str, list[str]]:
    """Gene sets of a GMT file: ``{set name: [gene, ...]}`` in file order.

    Raises :class:`~musegnn_core.errors.InputFileError` for a missing, binary, non-UTF-8
    or empty file, and for any line with fewer than three tab-separated fields or without
    a gene.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"Gene-set file not found: {path}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"Cannot read gene-set file {path.name}: {exc}") from exc
    return parse_gmt(raw, path.name)


def parse_gmt(raw: bytes, name: str) -> dict[str, list[str]]:
    """Gene sets of GMT bytes (``name`` is the file name the messages show).

    Used directly on an upload, so that a bad file is refused before anything is written.
    """
    if b"\x00" in raw[:_SNIFF_BYTES]:
        raise InputFileError(
            f"{name} looks like a binary file, not a GMT gene-set file "
            "(tab-separated text: name, description, genes)."
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(
            f"{name} is not UTF-8 text (byte {exc.start}); a GMT file is tab-separated "
            "text: name, description, genes."
        ) from exc

    sets: dict[str, list[str]] = {}
    seen: dict[str, set[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) < 3:
            raise InputFileError(
                f"{name}, line {number}: {len(fields)} tab-separated field(s), a GMT line "
                "needs at least 3 (name, description, genes...)."
            )
        set_name = fields[0].strip()
        if not set_name:
            raise InputFileError(f"{name}, line {number}: the gene-set name is empty.")
        genes = [g.split(",", 1)[0].strip() for g in fields[2:]]
        genes = [g for g in genes if g]
        if not genes:
            raise InputFileError(f"{name}, line {number}: gene set {set_name!r} has no genes.")
        members = sets.setdefault(set_name, [])
        known = seen.setdefault(set_name, set())
        for gene in genes:
            if gene not in known:
                known.add(gene)
                members.append(gene)
    if not sets:
        raise InputFileError(f"{name} holds no gene sets (the file is empty).")
    return sets

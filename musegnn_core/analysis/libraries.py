"""Where gene-set libraries come from: shared folders, uploads, and cached Enrichr downloads.

A workspace keeps its own libraries in ``resources/genesets/`` (uploads) and
``resources/genesets/enrichr/`` (Enrichr libraries fetched by gseapy, kept so that the
next session works offline). The shared data folder's ``genesets/`` and the simulated
atlas's ``planted_modules.gmt`` are listed too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..data.readers import safe_upload_name
from ..errors import InputFileError, ValidationError
from ..paths import shared_data_dir
from ..storage import atomic_path
from .genesets import parse_gmt

MAX_LIBRARY_BYTES = 200 * 1024 * 1024
_ENRICHR_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,120}$")
ENRICHR_ORGANISMS = ("Human", "Mouse")


@dataclass(frozen=True)
class GeneSetLibrary:
    name: str  # file name without .gmt / .symbols.gmt
    path: Path
    source: str  # "shared", "workspace", "enrichr" or "simulated"


def library_name(path: str | Path) -> str:
    name = Path(path).name
    for suffix in (".symbols.gmt", ".gmt"):
        name = name.removesuffix(suffix)
    return name


def uploads_dir(workspace) -> Path:
    return workspace.genesets_dir


def enrichr_dir(workspace) -> Path:
    return uploads_dir(workspace) / "enrichr"


def list_libraries(
    workspace=None, extra_folders: Sequence[str | Path] = ()
) -> list[GeneSetLibrary]:
    """Every GMT file the app can offer, shared ones first, then the workspace's."""
    folders: list[tuple[Path, str]] = []
    shared = shared_data_dir()
    if shared is not None:
        folders.append((shared / "genesets", "shared"))
    folders += [(Path(f), "folder") for f in extra_folders]
    if workspace is not None:
        folders += [
            (uploads_dir(workspace), "workspace"),
            (enrichr_dir(workspace), "enrichr"),
            (workspace.resources_dir, "simulated"),
        ]
    found, seen = [], set()
    for folder, source in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.gmt")):
            if path.name.startswith(".tmp-") or path.resolve() in seen:
                continue
            seen.add(path.resolve())
            found.append(GeneSetLibrary(library_name(path), path, source))
    return found


def resolve_libraries(workspace, refs: Sequence[str | Path]) -> list[Path]:
    """GMT paths for ``refs``: each a .gmt file, a folder of them, or a listed library's name."""
    known = {lib.name: lib.path for lib in list_libraries(workspace)}
    paths: list[Path] = []
    for ref in refs:
        candidate = Path(ref).expanduser()
        if candidate.is_dir():
            inside = sorted(candidate.glob("*.gmt"))
            if not inside:
                raise ValidationError(f"The folder {candidate} holds no .gmt files.")
            paths += inside
        elif candidate.is_file():
            paths.append(candidate)
        elif str(ref) in known:
            paths.append(known[str(ref)])
        else:
            names = ", ".join(sorted(known)) or "none"
            raise ValidationError(
                f"No gene-set library {str(ref)!r}: give a .gmt file, a folder of them, "
                f"or one of the known libraries ({names})."
            )
    return list(dict.fromkeys(paths))


def save_uploaded_library(workspace, filename: str, data: bytes) -> GeneSetLibrary:
    """Check an uploaded GMT and keep it in the workspace (nothing is written if it is bad)."""
    name = safe_upload_name(filename)
    if not name.lower().endswith(".gmt"):
        raise InputFileError(
            f"{filename!r} is not a .gmt file: a gene-set library is tab-separated text "
            "(name, description, genes) saved with the .gmt extension."
        )
    if len(data) > MAX_LIBRARY_BYTES:
        raise InputFileError(f"{name} is larger than {MAX_LIBRARY_BYTES // 2**20} MB.")
    parse_gmt(data, name)  # raises InputFileError with the line at fault; nothing written yet
    target = uploads_dir(workspace) / name
    with atomic_path(target) as tmp_path:
        Path(tmp_path).write_bytes(data)
    return GeneSetLibrary(library_name(target), target, "workspace")


def _offline_message(what: str, exc: Exception, workspace) -> str:
    cached = [lib.name for lib in list_libraries(workspace) if lib.source == "enrichr"]
    have = ", ".join(cached) if cached else "none yet"
    return (
        f"Cannot {what}: Enrichr is not reachable ({type(exc).__name__}); this machine "
        f"looks offline. Cached Enrichr libraries: {have}. The local GMT files still work."
    )


def fetch_enrichr_library(
    workspace,
    name: str,
    organism: str = "Human",
    fetch: Callable[..., dict[str, list[str]]] | None = None,
) -> GeneSetLibrary:
    """An Enrichr library as a GMT in the workspace: from the cache, else downloaded once."""
    import gseapy

    if not _ENRICHR_NAME.match(str(name)):
        raise ValidationError(f"{name!r} is not an Enrichr library name (e.g. KEGG_2021_Human).")
    if organism not in ENRICHR_ORGANISMS:
        raise ValidationError(f"organism must be one of {', '.join(ENRICHR_ORGANISMS)}.")
    target = enrichr_dir(workspace) / f"{name}.gmt"
    if target.exists():
        return GeneSetLibrary(name, target, "enrichr")
    fetch = fetch or gseapy.get_library
    try:
        sets = fetch(name=name, organism=organism)
    except Exception as exc:
        raise ValidationError(_offline_message(f"fetch {name}", exc, workspace)) from exc
    if not sets:
        raise ValidationError(f"Enrichr returned no gene sets for {name!r}; check the name.")
    lines = []
    for term, genes in sets.items():
        clean = [str(g).strip() for g in genes if str(g).strip()]
        if clean:
            lines.append("\t".join([str(term).replace("\t", " "), "", *clean]))
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return GeneSetLibrary(name, target, "enrichr")

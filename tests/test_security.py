"""Security: safe server defaults, no path traversal, nothing uploaded is ever executed.

- ``.streamlit/config.toml``: localhost only, XSRF protection on, bounded uploads, no
  tracebacks shown to the browser; ``make run`` does not override the address.
- Upload names (the Data page stages an upload as ``<ws>/.tmp-upload-*/<safe name>``)
  cannot leave the staging folder whatever the browser sends: ``..``, absolute paths,
  backslashes, NUL and control characters, unicode look-alikes; dataset, run and job
  names cannot be paths either.
- Text shown in the pages goes through ``safe_text``.
- Pickles are never loaded: a payload whose ``__reduce__`` would create a marker file is
  offered as .pkl, .rds, .h5ad, .csv, .h5, a gzip table, a 10x matrix, inside an h5ad,
  and as a training checkpoint (loaded with ``weights_only=True``); the marker never
  appears (and the same payload, unpickled on purpose, does create it).
- HDF5 files may not pull in other files of the server (external links, virtual datasets).
- The source code loads no pickle anywhere; every dependency is pinned; the README says
  how to report a vulnerability and what exposing the app on a network means.
"""

from __future__ import annotations

import ast
import gzip
import os
import pickle
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from musegnn_core.cli import main
from musegnn_core.data.importer import ImportOptions, import_datasets
from musegnn_core.data.readers import safe_upload_name
from musegnn_core.errors import InputFileError, MuseGNNError, ValidationError, WorkspaceError
from musegnn_core.metadata import check_name
from musegnn_core.paths import PROJECT_ROOT
from musegnn_core.runs import check_run_name, get_run
from musegnn_core.train import load_checkpoint
from musegnn_core.workspace import Workspace
from tests.factories import make_counts, write_10x_mtx, write_h5ad

HOSTILE_NAMES = [
    "../../etc/passwd",
    "../../../../../../tmp/owned.h5ad",
    "/etc/cron.d/evil.csv",
    "..\\..\\windows\\system32\\evil.h5",
    "C:\\Users\\x\\evil.h5ad",
    "evil.h5ad\x00.png",
    "\x00",
    "..",
    ".",
    "...",
    "",
    " ",
    ".hidden.h5ad",
    "-rf.h5ad",
    "a/../../b.csv",
    "\u202egnp.h5ad",  # right-to-left override: displays as 'dah5.png'
    "\uff0e\uff0e\uff0fetc\uff0fpasswd",  # fullwidth '../etc/passwd'
    "\u2024\u2024/x.h5ad",  # one-dot leaders look like '..'
    "e\u0301vil\u200b.h5ad",  # combining accent and zero-width space
    "con.h5ad",
    "x" * 5000 + ".h5ad",
    "line\nbreak.csv",
    "tab\there.tsv",
    "$(touch pwned).h5ad",
    "`rm -rf ~`.csv",
    "<script>alert(1)</script>.h5ad",
    "%2e%2e%2fetc%2fpasswd",
]


# ----------------------------------------------------------------- server settings
def test_streamlit_defaults_are_safe():
    config = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text())
    server = config["server"]
    assert server["address"] in ("localhost", "127.0.0.1")
    assert server["enableXsrfProtection"] is True
    assert server.get("enableCORS", True) is True  # Streamlit turns XSRF off without CORS
    assert 1 <= server["maxUploadSize"] <= 2000  # MB
    assert server.get("headless") is True  # never opens a browser on a server
    assert config["client"]["showErrorDetails"] in ("none", False)  # no tracebacks shown
    assert config["browser"]["gatherUsageStats"] is False
    run_target = re.search(
        r"^run:.*?(?=^\S|\Z)", (PROJECT_ROOT / "Makefile").read_text(), re.M | re.S
    )
    assert run_target and "musegnn_core app" in run_target.group(0)
    assert "server.address" not in run_target.group(0) and "0.0.0.0" not in run_target.group(0)
    # `musegnn app` runs Streamlit in the checkout (so this config applies), no overrides.
    from musegnn_core.dashboard import app_command

    command = " ".join(app_command(PROJECT_ROOT, 8501))
    assert f"streamlit run {PROJECT_ROOT / 'app.py'}" in command
    assert "server.address" not in command and "0.0.0.0" not in command


def test_readme_documents_exposure_and_reporting():
    readme = (PROJECT_ROOT / "README.md").read_text()
    sections = {
        title: " ".join(body.split())
        for title, body in re.findall(r"^## (.+?)\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    }
    sharing = sections["Sharing the app"]
    assert "localhost" in sharing and "STREAMLIT_SERVER_ADDRESS=0.0.0.0" in sharing
    assert "trusted network" in sharing and "XSRF" in sharing
    report = sections["Reporting a vulnerability"]
    assert "public issue" in report and "privately" in report
    assert "Report a vulnerability" in report and "--version" in report


def test_every_dependency_is_pinned():
    lines = [
        *(PROJECT_ROOT / "requirements.txt").read_text().splitlines(),
        *(PROJECT_ROOT / "requirements-dev.txt").read_text().splitlines(),
    ]
    requirements = [line.split("#")[0].strip() for line in lines]
    requirements = [line for line in requirements if line and line != "-r requirements.txt"]
    assert len(requirements) >= 10
    for line in requirements:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._\-\[\],]*==[A-Za-z0-9.+!\-]+", line), line
    names = [re.split(r"[=\[]", line)[0].lower() for line in requirements]
    assert len(names) == len(set(names))


# ----------------------------------------------------------------- names
def staged_path(staging: Path, filename: str) -> Path:
    """Where the Data page writes an upload: ``staging / safe_upload_name(name)``."""
    return staging / safe_upload_name(filename)


def assert_contained(staging: Path, filename: str) -> str:
    safe = safe_upload_name(filename)
    assert safe and safe not in (".", "..") and not safe.startswith((".", "-"))
    assert "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert re.fullmatch(r"[A-Za-z0-9._-]+", safe), safe
    assert len(safe) <= 110
    assert staged_path(staging, filename).resolve().parent == staging.resolve()
    return safe


@pytest.mark.parametrize("filename", HOSTILE_NAMES)
def test_upload_names_stay_in_the_staging_folder(tmp_path, filename):
    staging = tmp_path / "ws" / ".tmp-upload-x"
    staging.mkdir(parents=True)
    safe = assert_contained(staging, filename)
    # Write it as the page does: nothing appears anywhere but in the staging folder.
    staged_path(staging, filename).write_bytes(b"data")
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [safe]


@settings(derandomize=True, database=None, max_examples=300, deadline=None)
@given(filename=st.text(max_size=300))
def test_any_upload_name_stays_in_the_staging_folder(filename):
    with tempfile.TemporaryDirectory() as folder:
        assert_contained(Path(folder), filename)


def test_known_suffixes_survive_and_others_are_neutral():
    assert safe_upload_name("pbmc 10k.h5ad") == "pbmc_10k.h5ad"
    assert safe_upload_name("../x/COUNTS.TSV.GZ") == "COUNTS.tsv.gz"
    assert safe_upload_name("run.py").endswith(".py")  # kept as data; no reader accepts it


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ".hidden", "/abs", "a\\b", "x\x00", ""])
def test_dataset_run_and_job_names_cannot_be_paths(tmp_path, name):
    ws = Workspace.open(tmp_path / "ws")
    with pytest.raises(ValidationError):
        check_name(name)
    with pytest.raises(ValidationError):
        ws.dataset_path(name)
    with pytest.raises(ValidationError):
        check_run_name(name)
    from musegnn_core import jobs

    with pytest.raises(ValidationError):
        jobs.job_record_path(ws, name)


def test_upload_route_end_to_end(tmp_path):
    """The page's upload steps with a hostile name: stays inside, staging removed."""
    import shutil

    ws = Workspace.open(tmp_path / "ws")
    outside = sorted(p for p in tmp_path.iterdir())
    staging = Path(tempfile.mkdtemp(prefix=".tmp-upload-", dir=ws.root))
    try:
        target = staging / safe_upload_name("../../../../pbmc<b>.h5ad")
        target.write_bytes(write_h5ad(make_counts(), tmp_path / "src.h5ad").read_bytes())
        [item] = import_datasets(ws, [target], ImportOptions())
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    assert item.meta.name == "pbmc_b"
    assert ws.dataset_names() == ["pbmc_b"]
    assert sorted(p for p in tmp_path.iterdir()) == sorted([*outside, tmp_path / "src.h5ad"])
    assert not [p for p in ws.root.iterdir() if p.name.startswith(".tmp-")]


# ----------------------------------------------------------------- display
def unescaped(text: str, characters: str) -> list[str]:
    """Characters of ``characters`` in ``text`` that no backslash escapes."""
    return re.findall(rf"(?<!\\)[{re.escape(characters)}]", text)


def test_safe_text_escapes_html_and_emphasis():
    from pages.ui.common import safe_text

    shown = safe_text("<script>alert(1)</script> **bold** _it_ `code`")
    assert "<" not in shown and ">" not in shown
    assert not unescaped(shown, "*_`")


@pytest.mark.parametrize(
    "text",
    ["[Sign in again](https://evil.example)", "![x](https://evil.example/p.png)", ":red[alarm]"],
)
def test_safe_text_neutralises_links_and_images(text):
    from pages.ui.common import safe_text

    assert not unescaped(safe_text(text), "[]")


# ----------------------------------------------------------------- pickles
class Payload:
    """Unpickling this runs code: it creates the file named in ``marker``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


@pytest.fixture
def marker(tmp_path) -> Path:
    path = tmp_path / "PWNED"
    control = tmp_path / "CONTROL"
    pickle.loads(pickle.dumps(Payload(control)))  # the payload works when unpickled...
    assert control.exists()
    return path  # ...so if `path` ever appears, something unpickled it


def pickle_files(folder: Path, payload: bytes) -> dict[str, Path]:
    folder.mkdir()
    files = {}
    for name in ("data.pkl", "data.pickle", "data.rds", "data.h5ad", "data.csv", "data.h5"):
        files[name] = folder / name
        files[name].write_bytes(payload)
    files["data.tsv.gz"] = folder / "data.tsv.gz"
    files["data.tsv.gz"].write_bytes(gzip.compress(payload))
    tenx = write_10x_mtx(make_counts(), folder / "tenx", "v2")
    (tenx / "matrix.mtx").write_bytes(payload)
    files["10x matrix.mtx"] = tenx
    # A valid h5ad carrying the pickle as opaque bytes, and as an element claiming to be
    # a pickle: readers must neither unpickle the one nor honour the other.
    for name, encoding in (("opaque.h5ad", None), ("claims_pickle.h5ad", "pickle")):
        path = write_h5ad(make_counts(), folder / name)
        with h5py.File(path, "r+") as handle:
            handle["uns"]["payload"] = np.void(payload)
            if encoding:
                handle["uns"]["payload"].attrs["encoding-type"] = encoding
                handle["uns"]["payload"].attrs["encoding-version"] = "0.1.0"
        files[name] = path
    return files


def test_pickled_payloads_are_never_loaded(tmp_path, marker):
    files = pickle_files(tmp_path / "files", pickle.dumps(Payload(marker)))
    ws = Workspace.open(tmp_path / "ws")
    outcomes = {}
    for label, path in files.items():
        try:
            import_datasets(ws, [path], ImportOptions(name=f"p{len(outcomes)}"))
            outcomes[label] = "imported"
        except MuseGNNError as exc:
            outcomes[label] = str(exc)
        assert not marker.exists(), f"{label} ran code"
    for label in ("data.pkl", "data.pickle", "data.rds"):
        assert "can run code" in outcomes[label]
    for label in ("data.h5ad", "data.h5"):
        assert "not an HDF5 file" in outcomes[label]
    assert outcomes["data.csv"] != "imported" and outcomes["data.tsv.gz"] != "imported"
    assert outcomes["10x matrix.mtx"] != "imported"
    # The opaque bytes ride along unread; nothing of them reaches the stored dataset.
    assert outcomes["opaque.h5ad"] == "imported"
    assert "payload" not in ws.load_dataset("p" + str(list(outcomes).index("opaque.h5ad"))).uns
    # Through the command line as well.
    code = main(["import", str(files["data.h5ad"]), "-w", str(ws.root), "--name", "cli"])
    assert code == 2 and not marker.exists()


def test_malicious_checkpoint_is_refused_without_running(trained_sim_workspace, marker, capsys):
    ws = Workspace.open(trained_sim_workspace)
    run = get_run(ws, "r")
    genuine = torch.load(run.checkpoint_path, weights_only=True)
    torch.save({**genuine, "history": [Payload(marker)]}, run.checkpoint_path)
    with pytest.raises(WorkspaceError, match="unreadable"):
        load_checkpoint(run, torch.device("cpu"))
    assert not marker.exists()
    run.write_status(state="stopped")  # so that resuming it is a legitimate request
    code = main(["train", "-w", str(ws.root), "--resume", "--run-name", "r"])
    err = capsys.readouterr().err
    assert code == 2 and "unreadable" in err and "Traceback" not in err
    assert not marker.exists()


def test_hdf5_links_to_other_files_are_refused(tmp_path):
    """An upload must not make the import read other files of the server."""
    secret = write_h5ad(make_counts(seed=9), tmp_path / "someone_elses.h5ad")
    linked = write_h5ad(make_counts(), tmp_path / "linked.h5ad")
    with h5py.File(linked, "r+") as handle:
        del handle["X"]
        handle["X"] = h5py.ExternalLink(str(secret), "/X")
    virtual = write_h5ad(make_counts(), tmp_path / "virtual.h5ad")
    with h5py.File(secret, "r") as source:
        shape, dtype = source["X"]["data"].shape, source["X"]["data"].dtype
    layout = h5py.VirtualLayout(shape=shape, dtype=dtype)
    layout[:] = h5py.VirtualSource(str(secret), "X/data", shape=shape)
    with h5py.File(virtual, "r+") as handle:
        del handle["X"]["data"]
        handle["X"].create_virtual_dataset("data", layout)
    ws = Workspace.open(tmp_path / "ws")
    with pytest.raises(InputFileError, match="links to another file"):
        import_datasets(ws, [linked])
    with pytest.raises(InputFileError, match="virtual dataset"):
        import_datasets(ws, [virtual])
    assert ws.dataset_names() == []


# ----------------------------------------------------------------- the code itself
def source_files() -> list[Path]:
    files = [
        *(PROJECT_ROOT / "musegnn_core").rglob("*.py"),
        *(PROJECT_ROOT / "pages").rglob("*.py"),
    ]
    return [*files, PROJECT_ROOT / "app.py"]


def test_no_code_path_unpickles():
    """Static audit: every torch.load is weights_only=True; no pickle/eval anywhere."""
    problems = []
    for path in source_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = (
                f"{func.value.id}.{func.attr}"
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                else getattr(func, "id", "")
            )
            keywords = {k.arg: k.value for k in node.keywords}
            where = f"{path.relative_to(PROJECT_ROOT)}:{node.lineno}"
            if name == "torch.load":
                value = keywords.get("weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    problems.append(f"{where}: torch.load without weights_only=True")
            elif name in ("np.load", "numpy.load"):
                value = keywords.get("allow_pickle")
                if isinstance(value, ast.Constant) and value.value is True:
                    problems.append(f"{where}: np.load(allow_pickle=True)")
            elif name in (
                "pickle.load",
                "pickle.loads",
                "pd.read_pickle",
                "joblib.load",
                "dill.load",
                "eval",
                "exec",
            ):
                problems.append(f"{where}: {name}")
    assert problems == []


def test_hdf5_probe_runs_as_its_own_process(tmp_path):
    """The probe is a plain module process: a hang or crash there cannot reach the app."""
    path = write_h5ad(make_counts(), tmp_path / "ok.h5ad")
    done = subprocess.run(
        [sys.executable, "-m", "musegnn_core.data.hdf5_probe", str(path)],
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout == "", done.stderr

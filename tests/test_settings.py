"""musegnn_core.settings is the one definition of every setting: the CLI options, the job
overrides and the Data and Train page widgets are compared against it here."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import fields

import pytest

from musegnn_core import settings
from musegnn_core.cli import build_parser
from musegnn_core.errors import ValidationError
from musegnn_core.paths import PROJECT_ROOT
from musegnn_core.settings import (
    GRAPH_SETTINGS,
    PRESETS,
    SETTINGS,
    GraphConfig,
    ModelConfig,
    TrainConfig,
    make_config,
)

#: Files that build options or widgets from the settings and must not restate them.
#: path -> the functions to read (None: the whole file).
READERS = {
    "musegnn_core/cli.py": (
        "add_setting_options",
        "add_build_graphs_arguments",
        "run_build_graphs",
        "add_train_arguments",
        "train_overrides",
        "run_train",
    ),
    "musegnn_core/jobs.py": None,
    "pages/1_Data.py": None,
    "pages/2_Train.py": None,
    "pages/ui/training.py": None,
    "pages/ui/settings_form.py": None,
}


def test_importing_the_settings_loads_no_torch():
    code = "import sys, musegnn_core.settings; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("config", [GraphConfig, ModelConfig, TrainConfig])
def test_every_field_is_declared_and_its_default_is_valid(config):
    for f in fields(config):
        if f.name in ("preset", "model", "graph"):
            continue
        meta = f.metadata.get("setting")
        assert meta is not None, f"{config.__name__}.{f.name} is declared without setting()"
        assert meta.label
        if meta.choices:
            assert f.default in meta.choices
        if isinstance(f.default, int | float) and not isinstance(f.default, bool):
            assert settings.within(meta, f.default)
    config()  # the defaults pass the checks


def test_bounds_and_choices_are_checked_for_every_setting():
    for name, spec in SETTINGS.items():
        meta = spec.meta
        bad = []
        if meta.choices:
            bad.append("no-such-choice")
        if meta.low is not None:
            bad.append(meta.low - (0 if meta.low_open else 1))
        if meta.high is not None:
            bad.append(meta.high + (0 if meta.high_open else 1))
        if spec.kind in ("int", "float"):
            bad.append(float("nan") if spec.kind == "float" else 2.5)
        for value in bad:
            with pytest.raises(ValidationError, match=f"^{name} must be"):
                make_config("quick", **{name: value})


def test_flags_are_unique_and_every_part_is_reachable():
    flags = [s.meta.flag for s in SETTINGS.values()]
    assert len(flags) == len(set(flags))
    assert {s.part for s in SETTINGS.values()} == {"train", "graph", "model"}
    config = make_config("quick", n_genes=150, decoder="cosine", epochs=3, device="cpu")
    assert (config.graph.n_genes, config.model.decoder, config.epochs) == (150, "cosine", 3)
    assert config.graph.device == "cpu"  # a training builds its graphs on its device
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_runs_and_graphs_stored_under_the_former_cap_name_still_load():
    stored = make_config("quick").to_dict()
    stored["graph"].pop("edges_per_gene")
    stored["graph"]["max_neighbours"] = None
    assert TrainConfig.from_dict(stored).graph.edges_per_gene == 0
    # The cache key keeps the former name, so graphs built before the rename are reused.
    assert GraphConfig(edges_per_gene=50).fingerprint_fields()["max_neighbours"] == 50
    assert GraphConfig().fingerprint_fields()["max_neighbours"] is None
    # A setting added later is hashed only when it differs from the former behaviour.
    assert "complete_graphs" not in GraphConfig().fingerprint_fields()
    assert GraphConfig(complete_graphs=True).fingerprint_fields()["complete_graphs"] is True


def _options(command: str) -> dict:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return {a.dest: a for a in sub.choices[command]._actions}


@pytest.mark.parametrize(
    ("command", "specs"), [("train", SETTINGS), ("build-graphs", GRAPH_SETTINGS)]
)
def test_cli_options_are_the_settings(command, specs):
    options = _options(command)
    for name, spec in specs.items():
        action = options[name]
        assert action.option_strings[0] == spec.meta.flag
        assert tuple(action.choices or ()) == spec.meta.choices
        assert action.default == (spec.default if command == "build-graphs" else None)
    declared = {spec.meta.flag for spec in specs.values()}
    own = {"--workspace", "--datasets", "--preset", "--config", "--run-name", "--resume", "--force"}
    own |= {"--help", "--distributed", "--workers", "--memory-limit-gb"}
    flags = {a.option_strings[0] for a in options.values() if a.option_strings}
    assert flags - {"-w", "-h"} <= declared | own


def _restated(node: ast.AST, choices: set) -> list:
    """Choice values written as a list (tuple, set) or as the keys of a label dict."""
    items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", [])
    values = [i.value for i in items if isinstance(i, ast.Constant)]
    found = [v for v in values if isinstance(v, str) and v in choices]
    return found if len(found) >= 2 else []


def test_no_reader_restates_choices():
    """Choice lists and their labels are written only in settings.py (a reader may still
    compare a value with one choice, e.g. ``device == "cuda"``)."""
    choices = {
        c for spec in [*SETTINGS.values(), *GRAPH_SETTINGS.values()] for c in spec.meta.choices
    }
    for path, functions in READERS.items():
        tree = ast.parse((PROJECT_ROOT / path).read_text())
        parts = [
            node
            for node in ast.walk(tree)
            if functions is None or (isinstance(node, ast.FunctionDef) and node.name in functions)
        ]
        assert functions is None or len(parts) == len(functions)
        restated = [
            found
            for part in (parts[:1] if functions is None else parts)
            for node in ast.walk(part)
            if (found := _restated(node, choices))
        ]
        assert not restated, f"{path} restates choices: {restated}"
    # The check itself sees a restated list.
    assert _restated(ast.parse('("raw", "bh")').body[0].value, choices)


def _widget(at, key):
    for kind in ("number_input", "selectbox", "checkbox", "text_area", "radio"):
        found = [w for w in getattr(at, kind) if w.key == key]
        if found:
            return kind, found[0]
    raise AssertionError(f"no widget with key {key}")


def _check_widget(at, key, spec, value):
    kind, widget = _widget(at, key)
    meta = spec.meta
    if spec.kind == "list":
        assert kind == "text_area" and widget.value == "\n".join(value)
        return
    assert widget.label == meta.label
    if meta.choices:
        assert kind in ("selectbox", "radio")
        labels = [meta.describe_choice(c) for c in meta.choices]
        assert [o for o in widget.options if o in labels] == widget.options
        assert widget.value == value
        return
    if spec.kind == "bool":
        assert kind == "checkbox" and widget.value == value
        return
    assert kind == "number_input" and widget.value == value
    proto = widget.proto
    assert proto.has_min == (meta.low is not None and not meta.low_open)
    assert proto.has_max == (meta.high is not None and not meta.high_open)
    if proto.has_min:
        assert proto.min == meta.low
    if proto.has_max:
        assert proto.max == meta.high


def test_page_widgets_are_the_settings(tmp_path, monkeypatch):
    from musegnn_core.data.demo import fill_demo
    from musegnn_core.workspace import Workspace
    from tests.factories import open_app_page

    ws = Workspace.open(tmp_path / "ws")
    fill_demo(ws, prefer_simulated=True)
    monkeypatch.setenv("MUSEGNN_WORKSPACE", str(ws.root))
    train = open_app_page("pages/2_Train.py")
    quick = settings.preset_values("quick")
    for name, spec in SETTINGS.items():
        _check_widget(train, f"train-{name}", spec, quick[name])
    data = open_app_page("pages/1_Data.py")
    for name, spec in GRAPH_SETTINGS.items():
        _check_widget(data, f"graph-{name}", spec, getattr(PRESETS["quick"].graph, name))


def test_the_graph_cap_has_one_meaning_and_zero_keeps_every_edge(tmp_path):
    parse = build_parser().parse_args
    for flag in ("--edges-per-gene", "--max-neighbours"):  # the former name still works
        args = parse(["build-graphs", "-w", str(tmp_path), flag, "0"])
        assert GraphConfig(**{n: getattr(args, n) for n in GRAPH_SETTINGS}).edges_per_gene == 0
    genes = tmp_path / "genes.txt"
    genes.write_text("CD74\nMKI67, CD74\n")
    if "include_genes" in SETTINGS:  # a list setting: comma list or @FILE
        args = parse(["train", "--include-genes", f"@{genes}"])
        assert make_config("quick", include_genes=args.include_genes).graph.include_genes == (
            "CD74",
            "MKI67",
        )


def test_a_switch_is_on_when_given_alone():
    switches = [s for s in SETTINGS.values() if s.kind == "bool"]
    for spec in switches:
        parse = build_parser().parse_args
        assert getattr(parse(["train", spec.meta.flag]), spec.name) is True
        assert getattr(parse(["train", spec.meta.flag, "false"]), spec.name) is False
        assert getattr(parse(["train"]), spec.name) is None  # the preset's value

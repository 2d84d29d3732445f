"""Every setting of graph building, the model and training, defined once.

Each field of :class:`GraphConfig`, :class:`ModelConfig` and :class:`TrainConfig` is
declared with :func:`setting`: its default and, in its :class:`Meta`, its bounds or
choices, a label, a help text and (for the settings a user may change) its CLI flag.
Everything else is generated from these declarations: validation (``__post_init__``),
the ``build-graphs`` and ``train`` options of the CLI, the overrides a background job
accepts, and the widgets of the Data and Train pages. Adding a setting is adding one
field here.

This module imports no torch, so the CLI's ``--help``, the pages and the job records can
read the settings without loading it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

from .errors import ValidationError

MAX_SEED = 2**32 - 1
#: Leiden resolutions accepted everywhere: training, the explore pages, the CLI.
LEIDEN_RESOLUTION_RANGE = (0.05, 50.0)
DEFAULT_LEIDEN_RESOLUTION = 1.0


@dataclass(frozen=True)
class Meta:
    """What a setting is, besides its default.

    ``low``/``high`` bound numbers (``low_open``/``high_open`` exclude the bound);
    ``choices`` lists the allowed values of a text setting and ``choice_labels`` says
    them in words. ``flag`` is the CLI option (None: not a user setting, only checked).
    ``scope`` is ``"all"`` or ``"graphs"`` (a graph setting that only ``build-graphs``
    and the Data page offer; in a training it follows another setting or stays fixed).
    ``step`` and ``format`` shape the page's number box. ``aliases`` are older flags
    still accepted.
    """

    label: str
    help: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    choice_labels: Mapping[str, str] | None = None
    flag: str | None = None
    scope: str = "all"
    step: float | None = None
    format: str | None = None
    aliases: tuple[str, ...] = ()

    def describe_choice(self, value: Any) -> str:
        return (self.choice_labels or {}).get(value, str(value))


def setting(default: Any, label: str, **meta: Any) -> Any:
    """A dataclass field with its metadata (see :class:`Meta`)."""
    if isinstance(default, list):
        default = tuple(default)
    return field(default=default, metadata={"setting": Meta(label=label, **meta)})


def kind_of(default: Any) -> str:
    """'bool', 'int', 'float', 'text' or 'list' (a tuple of symbols), from the default."""
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, tuple):
        return "list"
    return "text"


def parse_list(value: Any) -> tuple[str, ...]:
    """A list setting from a sequence or from text separated by commas, spaces or lines."""
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, Iterable):
        raise ValidationError(f"expected a list of names, not {value!r}.")
    items = [str(item).strip() for item in value]
    return tuple(dict.fromkeys(item for item in items if item))


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def check_value(name: str, meta: Meta, kind: str, value: Any) -> Any:
    """``value`` as the setting's type, or ValidationError with a one-line reason."""
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValidationError(f"{name} must be True or False, not {value!r}.")
        return value
    if kind == "list":
        return parse_list(value)
    if kind == "text":
        if not isinstance(value, str):
            raise ValidationError(f"{name} must be text, not {value!r}.")
        if meta.choices and value not in meta.choices:
            raise ValidationError(
                f"{name} must be one of {', '.join(map(str, meta.choices))}, not {value!r}."
            )
        return value
    if kind == "int":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"{name} must be a whole number, not {value!r}.")
    else:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError(f"{name} must be a number, not {value!r}.")
        if not math.isfinite(value):
            raise ValidationError(f"{name} must be a finite number, not {value!r}.")
        value = float(value)
    if not within(meta, value):
        raise ValidationError(f"{name} must be {bounds_text(meta)}, not {value!r}.")
    return value


def within(meta: Meta, value: float) -> bool:
    if meta.low is not None and (value <= meta.low if meta.low_open else value < meta.low):
        return False
    return not (
        meta.high is not None and (value >= meta.high if meta.high_open else value > meta.high)
    )


def bounds_text(meta: Meta) -> str:
    """'between 1 and 100000', 'in (0, 1)', '>= 0', '> 0'."""
    low, high = meta.low, meta.high
    if low is not None and high is not None:
        if not meta.low_open and not meta.high_open:
            return f"between {_number_text(low)} and {_number_text(high)}"
        left, right = "(" if meta.low_open else "[", ")" if meta.high_open else "]"
        return f"in {left}{_number_text(low)}, {_number_text(high)}{right}"
    if low is not None:
        return f"{'>' if meta.low_open else '>='} {_number_text(low)}"
    if high is not None:
        return f"{'<' if meta.high_open else '<='} {_number_text(high)}"
    return "valid"


def check_fields(config: Any) -> None:
    """Validate (and normalise: 5.0 -> 5, lists -> tuples) every declared field."""
    for f in fields(config):
        meta = f.metadata.get("setting")
        if meta is None:
            continue
        value = check_value(f.name, meta, kind_of(f.default), getattr(config, f.name))
        object.__setattr__(config, f.name, value)


# ------------------------------------------------------------------------- graphs
CORRECTIONS = ("raw", "bh")
EDGE_SIGNS = ("both", "positive")
SELECTIONS = ("per-dataset", "shared")
QC_PRESETS = ("default", "reference")
DEVICES = ("auto", "cpu", "cuda")
DEVICE_LABELS = {"auto": "automatic", "cpu": "CPU", "cuda": "CUDA GPU"}


@dataclass(frozen=True)
class GraphConfig:
    """Parameters of graph construction (defaults: the MuSe-GNN reference)."""

    n_genes: int = setting(
        1000,
        "Genes per graph",
        help="Genes per dataset graph: the top genes by Pearson-residual variance "
        "(SPARK-X for spatial data).",
        low=10,
        high=20000,
        flag="--n-genes",
        step=50,
    )
    pvalue: float = setting(
        0.005,
        "Edge p-value threshold",
        help="CS-CORE p-value below which two genes are joined by an edge.",
        low=0.0,
        high=1.0,
        low_open=True,
        high_open=True,
        flag="--pvalue",
        step=0.001,
        format="%.4g",
    )
    correction: str = setting(
        "raw",
        "Multiple testing of edges",
        help="Raw p-values (the reference) or Benjamini-Hochberg adjusted ones.",
        choices=CORRECTIONS,
        choice_labels={"raw": "none (reference)", "bh": "Benjamini-Hochberg"},
        flag="--correction",
    )
    edge_sign: str = setting(
        "both",
        "Edge sign",
        help="Which significant co-expression makes an edge: positive and negative (the "
        "reference's two-sided test), or positive only. An edge tells the model to place two "
        "genes together; on the shared atlas a quarter of the edges are negative "
        "correlations, and those gene pairs share a Hallmark set less often than random "
        "pairs.",
        choices=EDGE_SIGNS,
        choice_labels={"both": "positive and negative (reference)", "positive": "positive only"},
        flag="--edge-sign",
    )
    self_loops: bool = setting(True, "Self-loops", help="Keep each gene's edge to itself.")
    theta: float = setting(
        100.0,
        "Residual overdispersion",
        help="theta of the Pearson residuals.",
        low=0.0,
        low_open=True,
    )
    qc_preset: str = setting(
        "default",
        "QC thresholds",
        help="Robust defaults, or the reference notebook's (a fixed cap of 4000 genes per cell).",
        choices=QC_PRESETS,
        choice_labels={"default": "robust defaults", "reference": "the reference notebook's"},
        flag="--qc",
        scope="graphs",
    )
    selection: str = setting(
        "per-dataset",
        "Gene choice",
        help="Each dataset's own top genes (the reference), or favour top genes that other "
        "datasets also have.",
        choices=SELECTIONS,
        choice_labels={
            "per-dataset": "each dataset's top genes (reference)",
            "shared": "favour genes other datasets share",
        },
        flag="--selection",
    )
    shared_pool: int = setting(
        3,
        "Shared-selection pool",
        help="Shared selection picks among each dataset's top shared_pool x n_genes genes.",
        low=1,
        high=20,
    )
    include_genes: tuple = setting(
        (),
        "Genes to include",
        help="Genes of interest that join every graph whose dataset expresses them (detected "
        "in at least 3 cells after QC), on top of the chosen genes; symbols or human "
        "orthologs, comma-separated, or @FILE with one gene per line.",
        flag="--include-genes",
    )
    complete_graphs: bool = setting(
        False,
        "Complete graphs with the run's genes",
        help="A gene chosen for any dataset's graph also joins every other graph whose dataset "
        "detects it (in at least 3 cells after QC), so each gene is embedded from every "
        "dataset that measured it, not only those where it ranked among the top genes.",
        flag="--complete-graphs",
    )
    edges_per_gene: int = setting(
        0,
        "Strongest edges per gene",
        help="Keep each gene's N strongest significant edges; 0 keeps every significant edge.",
        low=0,
        high=100000,
        flag="--edges-per-gene",
        aliases=("--max-neighbours",),
        step=5,
    )
    device: str = setting(
        "auto",
        "Device",
        help="Where CS-CORE runs: automatic uses the GPU when there is one.",
        choices=DEVICES,
        choice_labels=DEVICE_LABELS,
        flag="--device",
        scope="graphs",  # a training builds its graphs on its own device
    )

    def __post_init__(self) -> None:
        check_fields(self)

    def fingerprint_fields(self) -> dict:
        """The parameters graphs are cached by (not where they were computed)."""
        values = asdict(self)
        values.pop("device")
        # Stored under its first name, so graphs built before the rename stay cached.
        # Settings added later are hashed only when they differ from the former behaviour,
        # so graphs built before they existed stay cached.
        if not values["include_genes"]:
            del values["include_genes"]
        if values["edge_sign"] == "both":
            del values["edge_sign"]
        if not values["complete_graphs"]:
            del values["complete_graphs"]
        cap = values.pop("edges_per_gene")
        values["max_neighbours"] = cap or None
        return values


# -------------------------------------------------------------------------- model
DECODERS = ("mlp", "inner", "cosine")
RECONSTRUCTIONS = ("dense", "sampled")
ALIGNMENTS = ("cosine", "contrastive")
SIMILARITY_NORMALISATIONS = ("count", "weight")
SHARES = ("group", "global")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and loss settings of MuSe-GNN (defaults: the reference code).

    ``hidden`` is the width of one attention head in layers 1 and 2 (layer 1 is
    ``hidden * heads1`` wide, layer 2 ``hidden * heads2``). ``decoder`` is ``"mlp"``
    (reference: an n -> n MLP on the rows of ``z z^T``, one per dataset) or
    ``"inner"`` (logits = ``z z^T``, no parameters). ``share`` is ``"group"``
    (layers 2-3 shared within a modality x tissue group, as the reference code) or
    ``"global"`` (one shared stack for all datasets). Reference values: ``lambda_S = 1``,
    ``lambda_C = 0.01``, NT-Xent temperature 0.07, 100 genes per contrastive step,
    neighbours drawn once.
    """

    hidden: int = setting(32, "Width per attention head", low=1)
    heads1: int = setting(4, "Heads of layer 1", low=1)
    heads2: int = setting(2, "Heads of layer 2", low=1)
    embedding_dim: int = setting(32, "Embedding dimensions", low=1)
    decoder: str = setting(
        "mlp",
        "Decoder",
        help="How edges are decoded from the embedding.",
        choices=DECODERS,
        choice_labels={
            "mlp": "MLP on z zᵀ (reference)",
            "inner": "inner product",
            "cosine": "scaled cosine with a bias",
        },
        flag="--decoder",
    )
    share: str = setting(
        "group",
        "Parameter sharing",
        help="Layers 2-3 shared within a modality x tissue group, or by all datasets.",
        choices=SHARES,
    )
    lambda_similarity: float = setting(1.0, "Similarity loss weight", low=0.0)
    similarity_normalisation: str = setting(
        "count",
        "Similarity loss",
        help="How the Jaccard-weighted cosine of shared genes is averaged; see README, "
        "Training presets.",
        choices=SIMILARITY_NORMALISATIONS,
        choice_labels={
            "count": "mean over shared genes (reference)",
            "weight": "weighted mean cosine",
        },
        flag="--similarity",
    )
    alignment: str = setting(
        "cosine",
        "Shared-gene alignment",
        help="How a gene's instances in two datasets are tied: the Jaccard-weighted cosine "
        "(the reference), or a weighted InfoNCE in which each instance must be closer to its "
        "other instance than to the other shared genes.",
        choices=ALIGNMENTS,
        choice_labels={
            "cosine": "weighted cosine (reference)",
            "contrastive": "contrastive (InfoNCE)",
        },
        flag="--alignment",
    )
    alignment_temperature: float = setting(
        0.1, "Alignment temperature", low=0.0, high=10.0, low_open=True
    )
    alignment_samples: int = setting(256, "Shared genes per alignment step", low=2)
    lambda_contrastive: float = setting(0.01, "Contrastive loss weight", low=0.0)
    temperature: float = setting(0.07, "NT-Xent temperature", low=0.0, low_open=True)
    contrastive_samples: int = setting(100, "Genes per contrastive step", low=1)
    resample_neighbours: bool = setting(False, "Redraw neighbours every epoch")
    reconstruction: str = setting(
        "dense",
        "Reconstruction loss",
        help="BCE over all gene pairs (the reference), or the graph's edges against as many "
        "sampled non-edges (both classes weigh the same, cost grows with the edges).",
        choices=RECONSTRUCTIONS,
        choice_labels={
            "dense": "all gene pairs (reference)",
            "sampled": "edges vs sampled non-edges",
        },
        flag="--reconstruction",
    )
    shared_gene_vectors: bool = setting(
        False,
        "Shared gene vectors",
        help="A learned vector per gene, the same in every dataset that holds the gene "
        "(matched by name or human ortholog), added to the first layer's output: what one "
        "dataset's graph teaches about a gene reaches its instances in all the others.",
        flag="--shared-gene-vectors",
    )
    negatives_per_edge: float = setting(
        1.0,
        "Non-edges per edge",
        help="Sampled non-edges per graph edge in each step (sampled reconstruction).",
        low=0.0,
        high=100.0,
        low_open=True,
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if self.reconstruction == "sampled" and self.decoder == "mlp":
            raise ValidationError(
                "The MLP decoder scores whole rows of z zᵀ: use the dense reconstruction "
                "with it, or the inner or cosine decoder."
            )


def sharing_group(tissue: str, modality: str, share: str = "group") -> str:
    """Key of the parameter-sharing group of a dataset.

    ``"global"`` puts every dataset in one group; ``"group"`` gives
    ``"{modality}_{tissue}"`` (the reference's technique x tissue key).
    """
    if share not in SHARES:
        raise ValidationError(f"share must be one of {', '.join(SHARES)}, not {share!r}.")
    if share == "global":
        return "global"
    return f"{modality}_{tissue}"


# ----------------------------------------------------------------------- training
LR_SCHEDULES = ("constant", "cosine")
#: How a step's partner dataset is drawn: ``uniform`` (any other dataset alike) or
#: ``overlap`` (in proportion to the summed neighbourhood overlap of the genes the two
#: datasets share, the Jaccard weights of the similarity loss).
PARTNER_DRAWS = ("uniform", "overlap")


def learning_rate_factor(schedule: str, epoch: int, epochs: int) -> float:
    """Multiplier of the base learning rates in ``epoch`` (1-based) of ``epochs``.

    A function of the epoch alone, so a resumed run continues the same schedule.
    """
    if schedule == "constant" or epochs <= 1:
        return 1.0
    progress = (epoch - 1) / (epochs - 1)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved as the run's config.json)."""

    preset: str = "quick"
    epochs: int = setting(
        2000,
        "Epochs",
        help="Passes over all datasets.",
        low=1,
        high=100000,
        flag="--epochs",
        step=10,
    )
    lr_encoder: float = setting(
        1e-4,
        "Encoder learning rate",
        low=0.0,
        high=1.0,
        low_open=True,
        high_open=True,
        flag="--lr-encoder",
        step=1e-4,
        format="%.1e",
    )
    lr_decoder: float = setting(
        1e-3,
        "Decoder learning rate",
        low=0.0,
        high=1.0,
        low_open=True,
        high_open=True,
        flag="--lr-decoder",
        step=1e-4,
        format="%.1e",
    )
    seed: int = setting(
        0,
        "Seed",
        help="Random seed: the same seed gives the same run on a CPU.",
        low=0,
        high=MAX_SEED,
        flag="--seed",
        step=1,
    )
    device: str = setting(
        "auto",
        "Device",
        help="Automatic uses the GPU when there is one.",
        choices=DEVICES,
        choice_labels=DEVICE_LABELS,
        flag="--device",
    )
    lr_schedule: str = setting(
        "constant",
        "Learning-rate schedule",
        help="Constant (the reference), or a cosine decay to a tenth of the rate by the "
        "last epoch: large steps early, fine ones at the end.",
        choices=LR_SCHEDULES,
        choice_labels={"constant": "constant (reference)", "cosine": "cosine decay"},
        flag="--lr-schedule",
    )
    reconstruct_partner: bool = setting(
        False,
        "Reconstruct both graphs of a step",
        help="Each step encodes a dataset and a partner; also reconstruct the partner's graph "
        "(the reference reconstructs the first only).",
        flag="--reconstruct-partner",
    )
    partner_draw: str = setting(
        "uniform",
        "Partner of a step",
        help="Each step pairs a dataset with a partner: any other alike (the reference), or "
        "more often the datasets whose shared genes have the same graph neighbours.",
        choices=PARTNER_DRAWS,
        choice_labels={"uniform": "any dataset alike (reference)", "overlap": "by overlap"},
        flag="--partner-draw",
    )
    checkpoint_every: int = setting(25, "Checkpoint every N epochs", low=1)
    mixed_precision: bool = setting(True, "bfloat16 autocast on a GPU")
    umap_neighbors: int = setting(15, "UMAP neighbours", low=2, high=200)
    leiden_resolution: float = setting(
        DEFAULT_LEIDEN_RESOLUTION,
        "Leiden resolution",
        help="Resolution of the run's clusters: higher gives more, smaller clusters.",
        low=LEIDEN_RESOLUTION_RANGE[0],
        high=LEIDEN_RESOLUTION_RANGE[1],
        flag="--leiden-resolution",
        step=0.1,
    )
    model: ModelConfig = field(default_factory=ModelConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)

    def __post_init__(self) -> None:
        check_fields(self)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        data = dict(data)
        model = ModelConfig(**data.pop("model", {}))
        graph = GraphConfig(**upgrade_graph_dict(data.pop("graph", {})))
        return cls(**data, model=model, graph=graph)


def upgrade_graph_dict(data: Mapping[str, Any]) -> dict:
    """Graph settings as stored by older versions, under today's names."""
    data = dict(data)
    if "max_neighbours" in data:  # renamed: the cap of the graph, not of a view
        data.setdefault("edges_per_gene", data.pop("max_neighbours") or 0)
    return data


#: The presets. ``paper`` is the reference recipe. ``quick`` is for a CPU laptop and a
#: lab-meeting demo; see README ("Training presets") for the measurements behind it.
PRESETS: dict[str, TrainConfig] = {
    "paper": TrainConfig(preset="paper", epochs=2000, checkpoint_every=50),
    "quick": TrainConfig(
        preset="quick",
        epochs=60,
        lr_encoder=2e-3,
        lr_decoder=2e-3,
        reconstruct_partner=True,
        partner_draw="overlap",
        checkpoint_every=10,
        model=ModelConfig(
            heads1=2,
            embedding_dim=64,
            decoder="cosine",
            reconstruction="sampled",
            similarity_normalisation="weight",
            lambda_similarity=3.0,
            shared_gene_vectors=True,
        ),
        graph=GraphConfig(
            n_genes=2500,
            selection="shared",
            shared_pool=2,
            edges_per_gene=25,
            edge_sign="positive",
        ),
    ),
}
#: What each preset is for, in words (the numbers come from the presets themselves).
PRESET_PURPOSE = {
    "quick": "minutes on a laptop CPU, for a first look and demos",
    "paper": "the reference recipe of the paper; about an hour on a 2-core CPU for eight "
    "datasets, best on a GPU",
}


# ------------------------------------------------------------------------ launch
#: The most training processes one launch starts (one per GPU of the machine).
MAX_PROCESSES = 64


@dataclass(frozen=True)
class LaunchConfig:
    """How a training's processes are started; not part of the run's settings (a run
    gives the same result and resumes with any number of processes)."""

    processes: int = setting(
        1,
        "GPUs",
        help="Train with one process per GPU (torchrun, --distributed): each epoch's steps "
        "are shared among them. One: a plain process.",
        low=1,
        high=MAX_PROCESSES,
        step=1,
    )

    def __post_init__(self) -> None:
        check_fields(self)


# ------------------------------------------------------------- the flat settings
@dataclass(frozen=True)
class Setting:
    """One user setting: its flat name, where it lives in a TrainConfig, its metadata."""

    name: str
    part: str  # "train", "graph", "model" or "launch"
    meta: Meta
    default: Any
    kind: str

    @property
    def dest(self) -> str:
        """The attribute name argparse stores the flag's value under."""
        return self.name


_PARTS = {
    "train": TrainConfig,
    "graph": GraphConfig,
    "model": ModelConfig,
    "launch": LaunchConfig,
}


def declared_settings(part: str) -> dict[str, Setting]:
    """Every declared field of one config class (user settings and fixed ones)."""
    out = {}
    for f in fields(_PARTS[part]):
        meta = f.metadata.get("setting")
        if meta is not None and f.default is not MISSING:
            out[f.name] = Setting(f.name, part, meta, f.default, kind_of(f.default))
    return out


def _user_settings(parts: Iterable[str], scopes: tuple[str, ...]) -> dict[str, Setting]:
    out: dict[str, Setting] = {}
    for part in parts:
        for name, spec in declared_settings(part).items():
            if spec.meta.flag is None or spec.meta.scope not in scopes:
                continue
            if name in out:
                raise TypeError(f"Setting {name!r} is declared twice; give it another name.")
            out[name] = spec
    return out


#: The settings a training accepts besides preset and datasets (CLI options of
#: ``train``, job overrides, Train page widgets), in the order the page shows them.
SETTINGS: dict[str, Setting] = _user_settings(("train", "graph", "model"), ("all",))
#: The settings of ``build-graphs`` and the Data page's graph form.
GRAPH_SETTINGS: dict[str, Setting] = _user_settings(("graph",), ("all", "graphs"))
#: How a background training is launched (the Train page's "use N GPUs").
LAUNCH_SETTINGS: dict[str, Setting] = declared_settings("launch")


def make_config(preset: str = "quick", **overrides: Any) -> TrainConfig:
    """The TrainConfig of ``preset`` with ``overrides``, validated.

    Overrides are TrainConfig fields (including whole ``model=``/``graph=`` configs) or the
    flat names of :data:`SETTINGS` (``n_genes=150``); None keeps the preset's value. A
    training's graphs are built on its device.
    """
    if preset not in PRESETS:
        raise ValidationError(f"Unknown preset {preset!r}: choose {', '.join(PRESETS)}.")
    base = PRESETS[preset]
    train_fields = {f.name for f in fields(TrainConfig)}
    parts: dict[str, dict] = {"train": {}, "graph": {}, "model": {}}
    for name, value in overrides.items():
        if value is None:
            continue
        if name in train_fields:
            parts["train"][name] = value
        elif name in SETTINGS:
            parts[SETTINGS[name].part][name] = value
        elif name == "max_neighbours":  # the graph cap's former name
            parts["graph"]["edges_per_gene"] = value
        else:
            raise ValidationError(
                f"Unknown training setting {name!r}: choose from {', '.join(SETTINGS)}."
            )
    train = parts["train"]
    graph = train.pop("graph", base.graph)
    model = train.pop("model", base.model)
    if "device" in train and "device" not in parts["graph"]:
        parts["graph"]["device"] = train["device"]
    return replace(
        base,
        **train,
        graph=replace(graph, **parts["graph"]),
        model=replace(model, **parts["model"]),
    )


def config_values(config: TrainConfig) -> dict[str, Any]:
    """The flat :data:`SETTINGS` values of a TrainConfig."""
    where = {"train": config, "graph": config.graph, "model": config.model}
    return {name: getattr(where[s.part], name) for name, s in SETTINGS.items()}


def preset_values(preset: str) -> dict[str, Any]:
    if preset not in PRESETS:
        raise ValidationError(f"Unknown preset {preset!r}: choose {', '.join(PRESETS)}.")
    return config_values(PRESETS[preset])


def preset_summary(preset: str) -> str:
    """One line describing a preset, with its numbers read from the preset itself."""
    config = PRESETS[preset]
    g, m = config.graph, config.model
    genes = (
        f"each dataset's top {g.n_genes} genes"
        if g.selection == "per-dataset"
        else f"top {g.n_genes} genes favouring shared ones"
    )
    sign = "positive " if g.edge_sign == "positive" else ""
    edges = (
        f"each gene's {g.edges_per_gene} strongest {sign}edges"
        if g.edges_per_gene
        else f"all significant {sign}edges"
    )
    # The model's choices where they differ from the reference, decoder first.
    reference = ModelConfig()
    choices = [
        {
            "mlp": "MLP decoder",
            "inner": "inner-product decoder",
            "cosine": "scaled-cosine decoder",
        }.get(m.decoder, m.decoder)
    ]
    if m.lambda_similarity != reference.lambda_similarity:
        choices.append(f"similarity weight {m.lambda_similarity:g}")
    if m.shared_gene_vectors:
        choices.append("a learned vector per gene shared by its datasets")
    if config.reconstruct_partner:
        choices.append("both graphs of a step reconstructed")
    if config.partner_draw == "overlap":
        choices.append("partners drawn by neighbourhood overlap")
    if m.heads1 != reference.heads1:
        choices.append(f"{m.heads1} attention heads in layer 1")
    if m.embedding_dim != reference.embedding_dim:
        choices.append(f"a {m.embedding_dim}-d embedding")
    return (
        f"{config.epochs} epochs, learning rates {config.lr_encoder:g} / {config.lr_decoder:g} "
        f"(encoder / decoder), {', '.join(choices)}, {genes}, {edges}: {PRESET_PURPOSE.get(preset, '')}"
    ).rstrip(": ")

"""A small simulated multi-dataset atlas whose right answers are known.

Why it exists: every later stage (QC, HVG/SPARK-X gene selection, CS-CORE graphs,
ortholog mapping, training, clustering) needs data in seconds, offline, with a
ground truth to test against; and a fresh install with no real data still needs a
demo. Real atlases give neither speed nor a truth, so this module plants one:

- a universe of human-style gene symbols, each dataset measuring a different subset
  of it (overlaps of hundreds of genes, as between real datasets);
- co-expression modules: genes whose log-mean shares one latent activity per cell,
  so they are strongly correlated wherever the module is active, and independent
  noise genes elsewhere. Some modules are shared across datasets, tissues, species
  and modalities, some belong to one dataset only; in the spatial dataset two of
  them follow a disc and a gradient in space;
- a mouse dataset named with mouse symbols through a simulated ortholog table that
  also holds the awkward cases of the real HCOP table (weak paralog hits, one human
  gene to two mouse genes, two human genes to one mouse gene, mouse genes without a
  human ortholog), so one-to-one filtering is exercised;
- mitochondrial genes (``MT-``/``mt-``) and ``MT``-named nuclear genes (``MTOR``...)
  plus a few damaged high-mitochondrial cells, so QC has something to remove and
  something it must keep.

Counts are negative binomial (gamma-Poisson) with log-normal cell depths. Everything
is drawn from ``np.random.default_rng(seed)``: the same seed gives identical data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..storage import atomic_path, atomic_write_text

#: The 13 mitochondrially encoded human genes (what QC's ``MT-`` prefix must catch).
HUMAN_MITO_GENES: tuple[str, ...] = (
    "MT-ND1",
    "MT-ND2",
    "MT-CO1",
    "MT-CO2",
    "MT-ATP8",
    "MT-ATP6",
    "MT-CO3",
    "MT-ND3",
    "MT-ND4L",
    "MT-ND4",
    "MT-ND5",
    "MT-ND6",
    "MT-CYB",
)

#: Nuclear genes whose names start with "MT": a correct mitochondrial filter keeps them.
MT_LOOKALIKE_GENES: tuple[str, ...] = ("MTOR", "MTHFD1", "MT1A")

#: Highly expressed, non-variable genes (real housekeeping names, flat expression here).
FLAT_GENES: tuple[str, ...] = (
    "ACTB",
    "GAPDH",
    "B2M",
    "FTL",
    "TPT1",
    "EEF1A1",
    "TMSB4X",
    "MALAT1",
    "RPL3",
    "RPL4",
    "RPL5",
    "RPL7",
    "RPL10",
    "RPL13",
    "RPS3",
    "RPS6",
    "RPS8",
    "RPS12",
    "RPS18",
    "RPS27A",
)

#: Gene symbols do not depend on the seed: a symbol names the same gene in every atlas.
NAMING_SEED = 20231002

SPATIAL_PATTERNS = ("disc", "gradient")
ORTHOLOG_COLUMNS = ("human_symbol", "mouse_symbol", "support_n")


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class DatasetSpec:
    """One simulated dataset. ``gene_presence`` None means the config's default."""

    name: str
    species: str
    tissue: str
    modality: str
    technology: str
    n_cells: int
    median_depth: float
    n_cell_types: int = 5
    mito_fraction: float = 0.05
    low_quality_fraction: float = 0.0
    gene_presence: float | None = None


@dataclass(frozen=True)
class ModuleSpec:
    """A planted co-expression module: ``size`` genes active in ``datasets``.

    ``pattern`` ("disc" or "gradient") makes the module's activity a smooth function
    of the spot coordinates in spatial datasets; elsewhere it follows cell types.
    """

    name: str
    size: int
    datasets: tuple[str, ...]
    pattern: str | None = None
    description: str = ""


BLOOD_A = "sim_scrna_human_blood_a"
BLOOD_B = "sim_scrna_human_blood_b"
PANCREAS_HUMAN = "sim_scrna_human_pancreas"
PANCREAS_MOUSE = "sim_scrna_mouse_pancreas"
BREAST_SPATIAL = "sim_spatial_human_breast"
BLOOD_ATAC = "sim_scatac_human_blood"

DEFAULT_DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec(BLOOD_A, "human", "blood", "scrna", "10x 3' v3", 400, 2500.0, 5, 0.05, 0.03),
    DatasetSpec(BLOOD_B, "human", "blood", "scrna", "10x 3' v2", 300, 2000.0, 4, 0.04, 0.03),
    DatasetSpec(
        PANCREAS_HUMAN, "human", "pancreas", "scrna", "10x 3' v3", 350, 2500.0, 5, 0.06, 0.03
    ),
    DatasetSpec(
        PANCREAS_MOUSE, "mouse", "pancreas", "scrna", "10x 3' v2", 300, 2200.0, 4, 0.05, 0.03
    ),
    DatasetSpec(
        BREAST_SPATIAL, "human", "breast", "spatial", "10x Visium", 306, 3000.0, 1, 0.08, 0.0, 0.4
    ),
    DatasetSpec(
        BLOOD_ATAC,
        "human",
        "blood",
        "scatac",
        "10x scATAC gene activity",
        250,
        700.0,
        4,
        0.01,
        0.0,
        0.35,
    ),
)

DEFAULT_MODULES: tuple[ModuleSpec, ...] = (
    ModuleSpec(
        "M01_core_all",
        30,
        (BLOOD_A, BLOOD_B, PANCREAS_HUMAN, PANCREAS_MOUSE, BREAST_SPATIAL, BLOOD_ATAC),
        description="shared by every dataset, species and modality",
    ),
    ModuleSpec(
        "M02_blood",
        30,
        (BLOOD_A, BLOOD_B, BLOOD_ATAC),
        description="blood, across scRNA and scATAC",
    ),
    ModuleSpec(
        "M03_pancreas",
        30,
        (PANCREAS_HUMAN, PANCREAS_MOUSE),
        description="pancreas, across human and mouse",
    ),
    ModuleSpec("M04_blood_a_only", 20, (BLOOD_A,), description="one dataset only"),
    ModuleSpec(
        "M05_disc",
        30,
        (BREAST_SPATIAL, PANCREAS_HUMAN),
        pattern="disc",
        description="a disc in the spatial data; cell-type driven in pancreas",
    ),
    ModuleSpec(
        "M06_gradient",
        25,
        (BREAST_SPATIAL,),
        pattern="gradient",
        description="a left-to-right gradient in the spatial data only",
    ),
    ModuleSpec("M07_mouse_only", 25, (PANCREAS_MOUSE,), description="mouse pancreas only"),
    ModuleSpec(
        "M08_scrna",
        30,
        (BLOOD_A, BLOOD_B, PANCREAS_HUMAN, PANCREAS_MOUSE),
        description="every scRNA dataset, both species",
    ),
    ModuleSpec("M09_atac_only", 20, (BLOOD_ATAC,), description="scATAC only"),
    ModuleSpec(
        "M10_mixed",
        25,
        (BLOOD_B, PANCREAS_HUMAN, BREAST_SPATIAL),
        description="three tissues, scRNA and spatial (not spatially patterned)",
    ),
)


@dataclass(frozen=True)
class SimulationConfig:
    """Sizes and effect strengths of the simulated atlas (defaults generate in ~1 s).

    - ``n_genes``: human gene universe, including the 13 MT- genes, MTOR-like genes
      and the flat housekeeping genes; ``n_ubiquitous`` of them are in every dataset,
      the others in a dataset with probability ``gene_presence`` (module genes are
      always present where their module is active).
    - ``type_effect_sd`` / ``cell_effect_sd``: spread of a module's activity between
      cell types and between cells; ``loading_range``: how strongly each module gene
      follows it (on the log scale). ``pattern_amplitude``: range of the spatial
      patterns' activity.
    - ``dispersion``: typical negative-binomial theta (variance mu + mu^2/theta);
      ``flat_dispersion`` for the flat, highly expressed genes.
    - Ortholog oddities: ``n_no_mouse_ortholog`` human genes have no mouse gene,
      ``n_mouse_only`` mouse genes have no human gene, ``n_weak_paralogs`` human genes
      get an extra low-support mouse hit, ``n_one_to_many`` get two equally
      supported mouse hits, ``n_many_to_one`` pairs of human genes share one mouse
      gene with equal support. The last two stay unmapped after one-to-one filtering.
    """

    n_genes: int = 1200
    n_ubiquitous: int = 250
    gene_presence: float = 0.45
    datasets: tuple[DatasetSpec, ...] = DEFAULT_DATASETS
    modules: tuple[ModuleSpec, ...] = DEFAULT_MODULES
    type_effect_sd: float = 0.8
    cell_effect_sd: float = 0.6
    loading_range: tuple[float, float] = (0.7, 1.3)
    pattern_amplitude: float = 2.5
    pattern_noise_sd: float = 0.3
    dispersion: float = 30.0
    flat_dispersion: float = 200.0
    depth_sdlog: float = 0.35
    dataset_shift_sd: float = 0.3
    n_no_mouse_ortholog: int = 30
    n_mouse_only: int = 15
    n_weak_paralogs: int = 10
    n_one_to_many: int = 5
    n_many_to_one: int = 3

    def __post_init__(self) -> None:
        check_config(self)


def scaled_config(
    n_datasets: int = len(DEFAULT_DATASETS),
    n_cells: int | None = None,
    n_genes: int | None = None,
    base: SimulationConfig | None = None,
) -> SimulationConfig:
    """The atlas of ``base`` (default the six datasets) with ``n_datasets`` datasets.

    Beyond the base's datasets, each is repeated in turn as a further batch (``_r2``,
    ``_r3``, ...): same tissue, species, modality and technology, its own cells and counts,
    and the same planted modules active; fewer keeps the first ``n_datasets`` (modules
    active in none of them are dropped). ``n_cells`` gives every dataset that many
    cells; ``n_genes`` sets the gene universe. For scale benchmarks.
    """
    base = base or SimulationConfig()
    if n_datasets < 1:
        raise ValueError("A simulated atlas needs at least one dataset.")
    batches: dict[str, list[str]] = {spec.name: [] for spec in base.datasets}
    specs = []
    for i in range(n_datasets):
        spec = base.datasets[i % len(base.datasets)]
        batch = i // len(base.datasets)
        name = spec.name if batch == 0 else f"{spec.name}_r{batch + 1}"
        specs.append(replace(spec, name=name, n_cells=n_cells or spec.n_cells))
        batches[spec.name].append(name)
    modules = [
        replace(m, datasets=tuple(name for d in m.datasets for name in batches[d]))
        for m in base.modules
    ]
    return replace(
        base,
        datasets=tuple(specs),
        modules=tuple(m for m in modules if m.datasets),
        n_genes=n_genes or base.n_genes,
    )


def check_config(config: SimulationConfig) -> None:
    """Fail early on a config that cannot produce the promised structure."""
    names = [d.name for d in config.datasets]
    if len(set(names)) != len(names):
        raise ValueError("Simulated dataset names must be unique.")
    for spec in config.datasets:
        if spec.species not in ("human", "mouse"):
            raise ValueError(f"{spec.name}: species must be human or mouse.")
        if spec.modality not in ("scrna", "spatial", "scatac"):
            raise ValueError(f"{spec.name}: modality must be scrna, spatial or scatac.")
        if spec.n_cells < 10:
            raise ValueError(f"{spec.name}: needs at least 10 cells.")
    for module in config.modules:
        unknown = set(module.datasets) - set(names)
        if unknown or not module.datasets:
            raise ValueError(f"Module {module.name} names unknown datasets {sorted(unknown)}.")
        if module.pattern not in (None, *SPATIAL_PATTERNS):
            raise ValueError(f"Module {module.name}: pattern must be one of {SPATIAL_PATTERNS}.")
    n_named = len(HUMAN_MITO_GENES) + len(MT_LOOKALIKE_GENES) + len(FLAT_GENES)
    n_special = (
        config.n_no_mouse_ortholog
        + config.n_weak_paralogs
        + config.n_one_to_many
        + 2 * config.n_many_to_one
    )
    needed = max(config.n_ubiquitous, n_named) + sum(m.size for m in config.modules) + n_special
    if config.n_genes < needed:
        raise ValueError(f"n_genes={config.n_genes} is too small: the modules etc. need {needed}.")


# ------------------------------------------------------------------------------ atlas


@dataclass
class SimulatedAtlas:
    """The simulated datasets and their ground truth.

    ``modules`` maps module name -> human symbols; ``module_datasets`` module ->
    datasets where it is active; ``spatial_patterns`` module -> pattern geometry
    (``kind``, ``dataset``, and ``center``/``radius`` or ``axis``) in spot coordinates.
    """

    datasets: list[ad.AnnData]
    modules: dict[str, list[str]]
    module_datasets: dict[str, list[str]]
    orthologs: pd.DataFrame
    seed: int = 0
    config: SimulationConfig = field(default_factory=SimulationConfig)
    spatial_patterns: dict[str, dict] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [a.uns["dataset"]["name"] for a in self.datasets]

    def dataset(self, name: str) -> ad.AnnData:
        for adata in self.datasets:
            if adata.uns["dataset"]["name"] == name:
                return adata
        raise KeyError(f"No simulated dataset named {name!r}; have {self.names}.")


def module_of_gene(atlas: SimulatedAtlas) -> dict[str, str]:
    """Human symbol -> planted module; background genes are absent (for ARI-style checks)."""
    return {gene: module for module, genes in atlas.modules.items() for gene in genes}


# ----------------------------------------------------------------------- gene symbols


def mouse_style(symbol: str) -> str:
    """Mouse capitalisation of a human symbol: ``ABC1`` -> ``Abc1``, ``MT-CO1`` -> ``mt-Co1``."""
    if symbol.startswith("MT-"):
        rest = symbol[3:]
        return "mt-" + rest[:1] + rest[1:].lower()
    return symbol[:1] + symbol[1:].lower()


def invent_symbols(n: int, taken: set[str]) -> list[str]:
    """``n`` new, unique, human-looking symbols (letters then a number, e.g. ``KOTB7``).

    Drawn from a fixed generator so a symbol always names the same simulated gene.
    Prefixes that mean something to QC or to the ortholog tests (MT, RP, GM) are
    avoided, and names are letters+digits only so mouse capitalisation is one-to-one.
    """
    rng = np.random.default_rng(NAMING_SEED)
    consonants = list("BCDFGHKLNPRSTVZ")
    vowels = list("AEIOU")
    out: list[str] = []
    seen = set(taken)
    while len(out) < n:
        parts = [rng.choice(consonants), rng.choice(vowels), rng.choice(consonants)]
        if rng.random() < 0.5:
            parts.append(rng.choice(consonants))
        symbol = "".join(parts) + str(int(rng.integers(1, 20)))
        if symbol[:2] in ("MT", "RP", "GM") or symbol in seen:
            continue
        seen.add(symbol)
        out.append(symbol)
    return out


def build_universe(config: SimulationConfig, rng: np.random.Generator) -> pd.DataFrame:
    """The human gene universe: one row per symbol with its role and expression traits.

    Columns: ``kind`` (mito, flat, module, background), ``module``, ``ubiquitous``,
    ``log_weight`` (relative expression), ``loading`` (module genes) and ``theta``.
    """
    named = [*HUMAN_MITO_GENES, *MT_LOOKALIKE_GENES, *FLAT_GENES]
    invented = invent_symbols(config.n_genes - len(named), set(named))
    symbols = [*named, *invented]
    n = len(symbols)
    kind = np.array(["background"] * n, dtype=object)
    kind[: len(HUMAN_MITO_GENES)] = "mito"
    flat_start = len(HUMAN_MITO_GENES) + len(MT_LOOKALIKE_GENES)
    kind[flat_start : flat_start + len(FLAT_GENES)] = "flat"
    ubiquitous = np.zeros(n, dtype=bool)
    ubiquitous[: len(named)] = True
    pool = rng.permutation(np.arange(len(named), n))
    n_extra_ubiquitous = max(config.n_ubiquitous - len(named), 0)
    ubiquitous[pool[:n_extra_ubiquitous]] = True
    module = np.array([""] * n, dtype=object)
    start = n_extra_ubiquitous
    for spec in config.modules:
        members = pool[start : start + spec.size]
        module[members] = spec.name
        kind[members] = "module"
        start += spec.size
    lo, hi = config.loading_range
    universe = pd.DataFrame(
        {
            "kind": kind,
            "module": module,
            "ubiquitous": ubiquitous,
            "log_weight": rng.normal(0.0, 1.0, n),
            "loading": np.where(kind == "module", rng.uniform(lo, hi, n), 0.0),
            "theta": config.dispersion * rng.lognormal(0.0, 0.5, n),
        },
        index=pd.Index(symbols, name="symbol"),
    )
    flat = universe["kind"].eq("flat")
    universe.loc[flat, "log_weight"] += 3.0
    universe.loc[flat, "theta"] = config.flat_dispersion
    universe.loc[universe["kind"].eq("mito"), "theta"] = config.dispersion
    universe.loc[universe["kind"].eq("module"), "theta"] = config.dispersion
    universe["mouse_symbol"] = [mouse_style(s) for s in symbols]
    return universe.sort_index()


# ------------------------------------------------------------------------ orthologs


def pick_special_genes(
    universe: pd.DataFrame, config: SimulationConfig, rng: np.random.Generator
) -> dict[str, list[str]]:
    """Disjoint sets of non-ubiquitous background genes given awkward ortholog rows.

    Module and ubiquitous genes keep clean 1:1 orthologs, so every planted module
    survives the species mapping and the ortholog oddities only touch background.
    """
    candidates = universe.index[universe["kind"].eq("background") & ~universe["ubiquitous"]]
    chosen = list(rng.permutation(np.asarray(candidates)))
    sizes = {
        "no_mouse": config.n_no_mouse_ortholog,
        "weak_paralog": config.n_weak_paralogs,
        "one_to_many": config.n_one_to_many,
        "many_to_one": 2 * config.n_many_to_one,
    }
    out, start = {}, 0
    for key, size in sizes.items():
        out[key] = [str(g) for g in chosen[start : start + size]]
        start += size
    return out


def build_orthologs(
    universe: pd.DataFrame, config: SimulationConfig, rng: np.random.Generator
) -> tuple[pd.DataFrame, list[str]]:
    """An HCOP-like table (human_symbol, mouse_symbol, support_n) and the mouse-only genes.

    Also sets ``universe['mouse_symbol']`` to None for human genes with no mouse gene
    of their own, so the mouse dataset never measures them. Returns the table and the
    extra mouse genes (paralogs, tie partners, ``Gm`` genes) the mouse data may hold.
    """
    special = pick_special_genes(universe, config, rng)
    universe.loc[special["no_mouse"], "mouse_symbol"] = None
    rows = [
        (human, mouse, int(rng.integers(6, 13)))
        for human, mouse in universe["mouse_symbol"].items()
        if mouse is not None
    ]
    support = {h: s for h, _, s in rows}
    extra_mouse: list[str] = []
    for human in special["weak_paralog"]:  # resolved by support: the paralog hit goes
        paralog = universe.at[human, "mouse_symbol"] + "l"
        rows.append((human, paralog, int(rng.integers(1, 4))))
        extra_mouse.append(paralog)
    for human in special["one_to_many"]:  # equal support: stays unmapped
        twin = universe.at[human, "mouse_symbol"] + "b"
        rows.append((human, twin, support[human]))
        extra_mouse.append(twin)
    pairs = special["many_to_one"]
    for first, second in zip(pairs[0::2], pairs[1::2], strict=True):
        rows = [r for r in rows if r[0] != second]  # the second loses its own mouse gene
        rows.append((second, universe.at[first, "mouse_symbol"], support[first]))
        universe.at[second, "mouse_symbol"] = None
    gm_numbers = rng.choice(np.arange(10000, 99999), config.n_mouse_only, replace=False)
    extra_mouse += [f"Gm{int(k)}" for k in sorted(gm_numbers)]
    table = pd.DataFrame(rows, columns=list(ORTHOLOG_COLUMNS))
    table = table.sort_values(["human_symbol", "support_n"], ascending=[True, False])
    return table.reset_index(drop=True), extra_mouse


# ------------------------------------------------------------------------ cell layout


def cell_barcodes(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` unique 16-base barcodes with the 10x ``-1`` suffix."""
    codes = rng.integers(0, 4**16, n)
    while len(np.unique(codes)) < n:  # practically never; keeps uniqueness a guarantee
        _, first = np.unique(codes, return_index=True)
        repeat = np.setdiff1d(np.arange(n), first)
        codes[repeat] = rng.integers(0, 4**16, len(repeat))
    letters = np.array(list("ACGT"))
    digits = (codes[:, None] // (4 ** np.arange(16)[None, :])) % 4
    return ["".join(row) + "-1" for row in letters[digits]]


def spot_grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Visium-like hexagonal spot coordinates (100 units apart) and array (row, col)."""
    n_rows = max(math.isqrt(n), 1)
    n_cols = math.ceil(n / n_rows)
    rows, cols = np.divmod(np.arange(n), n_cols)
    x = cols * 100.0 + (rows % 2) * 50.0
    y = rows * 100.0 * math.sqrt(3) / 2
    return np.column_stack([x, y]), np.column_stack([rows, cols])


def pattern_geometry(kind: str, coords: np.ndarray) -> dict:
    """Where a spatial pattern lies: a disc off-centre, or a gradient along x."""
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    if kind == "disc":
        center = lo + np.array([0.35, 0.6]) * (hi - lo)
        return {
            "kind": "disc",
            "center": [float(c) for c in center],
            "radius": float(0.25 * (hi - lo).min()),
        }
    return {"kind": "gradient", "axis": "x", "start": float(lo[0]), "stop": float(hi[0])}


def pattern_activity(geometry: dict, coords: np.ndarray, amplitude: float) -> np.ndarray:
    """Smooth activity in space, centred at zero: high inside the disc / on the right."""
    if geometry["kind"] == "disc":
        distance = np.linalg.norm(coords - np.asarray(geometry["center"]), axis=1)
        edge = 0.15 * geometry["radius"]
        raw = amplitude / (1.0 + np.exp((distance - geometry["radius"]) / edge))
    else:
        span = geometry["stop"] - geometry["start"]
        raw = amplitude * (coords[:, 0] - geometry["start"]) / span
    return raw - raw.mean()


# --------------------------------------------------------------------------- counts


@dataclass
class CellLayout:
    """Per-cell latent state of one dataset: types, depths, mito share, coordinates."""

    cell_type: np.ndarray
    depth: np.ndarray
    mito_fraction: np.ndarray
    low_quality: np.ndarray
    coords: np.ndarray | None = None
    array_pos: np.ndarray | None = None


def draw_cells(spec: DatasetSpec, config: SimulationConfig, rng: np.random.Generator) -> CellLayout:
    """Cell types (Dirichlet proportions), log-normal depths and mitochondrial shares.

    A few low-quality cells get a tenth of the depth and 30-60% mitochondrial
    counts, which is what the QC mitochondrial cap exists to remove.
    """
    n = spec.n_cells
    proportions = rng.dirichlet(np.full(spec.n_cell_types, 3.0))
    cell_type = rng.choice(spec.n_cell_types, n, p=proportions)
    depth = spec.median_depth * rng.lognormal(0.0, config.depth_sdlog, n)
    mito = np.clip(spec.mito_fraction * rng.lognormal(0.0, 0.3, n), 0.0, 0.15)
    low_quality = rng.random(n) < spec.low_quality_fraction
    depth[low_quality] *= 0.3
    mito[low_quality] = rng.uniform(0.3, 0.6, int(low_quality.sum()))
    layout = CellLayout(cell_type, depth, mito, low_quality)
    if spec.modality == "spatial":
        layout.coords, layout.array_pos = spot_grid(n)
    return layout


def module_activities(
    spec: DatasetSpec,
    modules: Sequence[ModuleSpec],
    layout: CellLayout,
    config: SimulationConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, dict]]:
    """Cells x modules latent activity, and the geometry of any spatial pattern.

    Non-spatial activity = a cell-type effect plus cell-level noise, drawn
    independently per module so distinct modules stay distinct. In spatial data a
    patterned module follows its pattern (plus a little noise) instead.
    """
    n = spec.n_cells
    activity = np.zeros((n, len(modules)))
    geometries: dict[str, dict] = {}
    for j, module in enumerate(modules):
        if module.pattern and layout.coords is not None:
            geometry = pattern_geometry(module.pattern, layout.coords)
            geometries[module.name] = {**geometry, "dataset": spec.name}
            smooth = pattern_activity(geometry, layout.coords, config.pattern_amplitude)
            activity[:, j] = smooth + rng.normal(0.0, config.pattern_noise_sd, n)
        else:
            activity[:, j] = type_driven_activity(layout.cell_type, spec.n_cell_types, config, rng)
    return activity, geometries


def type_driven_activity(
    cell_type: np.ndarray, n_types: int, config: SimulationConfig, rng: np.random.Generator
) -> np.ndarray:
    """Cell-type effect plus cell noise, with the effect's spread over cells fixed.

    With 4-5 types a raw draw of type effects can by chance be nearly flat or huge;
    rescaling it to ``type_effect_sd`` across cells keeps every module about equally
    detectable. A dataset with a single type (spots) gets all that variance as noise.
    """
    n = len(cell_type)
    effect = rng.normal(0.0, 1.0, n_types)[cell_type]
    spread = effect.std()
    if n_types > 1 and spread > 0:
        effect = (effect - effect.mean()) / spread * config.type_effect_sd
        noise_sd = config.cell_effect_sd
    else:
        effect = np.zeros(n)
        noise_sd = math.hypot(config.type_effect_sd, config.cell_effect_sd)
    return effect + rng.normal(0.0, noise_sd, n)


def expected_counts(
    genes: pd.DataFrame,
    modules: Sequence[ModuleSpec],
    activity: np.ndarray,
    layout: CellLayout,
    config: SimulationConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """Cells x genes negative-binomial means.

    Nuclear genes: depth x relative weight x exp(loading x module activity), scaled so
    the average nuclear total equals the cell's depth (activity still moves a cell's
    total, as real programmes do). Mitochondrial genes then add the cell's mito share.
    """
    log_weight = genes["log_weight"].to_numpy() + rng.normal(
        0.0, config.dataset_shift_sd, len(genes)
    )
    log_w = np.broadcast_to(log_weight, (len(layout.depth), len(genes))).copy()
    module_index = {m.name: j for j, m in enumerate(modules)}
    for gene_pos, (module, loading) in enumerate(
        zip(genes["module"], genes["loading"], strict=True)
    ):
        j = module_index.get(module)
        if j is not None:
            log_w[:, gene_pos] += loading * activity[:, j]
    weights = np.exp(log_w)
    mito = genes["kind"].eq("mito").to_numpy()
    nuclear = weights[:, ~mito]
    mu = np.zeros_like(weights)
    mu[:, ~mito] = layout.depth[:, None] * nuclear / nuclear.sum(axis=1).mean()
    if mito.any():
        share = weights[:, mito] / weights[:, mito].sum(axis=1, keepdims=True)
        f = layout.mito_fraction
        mu[:, mito] = (mu[:, ~mito].sum(axis=1) * f / (1.0 - f))[:, None] * share
    return mu


def draw_counts(mu: np.ndarray, theta: np.ndarray, rng: np.random.Generator) -> sp.csr_matrix:
    """Gamma-Poisson (negative binomial) counts, as float32 integers in CSR."""
    rate = rng.gamma(shape=theta[None, :], scale=mu / theta[None, :])
    counts = rng.poisson(rate).astype(np.float32)
    return sp.csr_matrix(counts)


# --------------------------------------------------------------------------- datasets


def choose_genes(
    universe: pd.DataFrame,
    spec: DatasetSpec,
    active: Sequence[ModuleSpec],
    config: SimulationConfig,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """The universe rows this dataset measures: ubiquitous + active modules + a random share.

    Mouse data cannot measure human genes without a mouse gene.
    """
    presence = config.gene_presence if spec.gene_presence is None else spec.gene_presence
    active_names = {m.name for m in active}
    keep = (
        universe["ubiquitous"].to_numpy()
        | universe["module"].isin(active_names).to_numpy()
        | (rng.random(len(universe)) < presence)
    )
    if spec.species == "mouse":
        keep &= universe["mouse_symbol"].notna().to_numpy()
    return universe[keep]


def mouse_extra_genes(
    extra_mouse: Sequence[str], config: SimulationConfig, rng: np.random.Generator
) -> pd.DataFrame:
    """Background rows for mouse genes with no usable human partner (80% measured)."""
    chosen = [g for g in extra_mouse if rng.random() < 0.8]
    return pd.DataFrame(
        {
            "kind": "background",
            "module": "",
            "ubiquitous": False,
            "log_weight": rng.normal(0.0, 1.0, len(chosen)),
            "loading": 0.0,
            "theta": config.dispersion * rng.lognormal(0.0, 0.5, len(chosen)),
            "mouse_symbol": chosen,
        },
        index=pd.Index(chosen, name="symbol"),
    )


def dataset_metadata(spec: DatasetSpec) -> dict[str, str]:
    return {
        "name": spec.name,
        "species": spec.species,
        "tissue": spec.tissue,
        "modality": spec.modality,
        "technology": spec.technology,
    }


def simulate_dataset(
    spec: DatasetSpec,
    universe: pd.DataFrame,
    extra_mouse: Sequence[str],
    config: SimulationConfig,
    seed: int,
    rng: np.random.Generator,
) -> tuple[ad.AnnData, dict[str, dict]]:
    """One AnnData of raw counts with metadata, plus its spatial pattern geometries."""
    active = [m for m in config.modules if spec.name in m.datasets]
    genes = choose_genes(universe, spec, active, config, rng)
    if spec.species == "mouse":
        genes = pd.concat([genes, mouse_extra_genes(extra_mouse, config, rng)])
        genes = genes.set_index("mouse_symbol", drop=False).sort_index()
    layout = draw_cells(spec, config, rng)
    activity, geometries = module_activities(spec, active, layout, config, rng)
    mu = expected_counts(genes, active, activity, layout, config, rng)
    counts = draw_counts(mu, genes["theta"].to_numpy(), rng)
    obs = pd.DataFrame(
        {
            "sim_cell_type": pd.Categorical([f"type_{t}" for t in layout.cell_type]),
            "sim_low_quality": layout.low_quality,
        },
        index=pd.Index(cell_barcodes(spec.n_cells, rng)),
    )
    adata = ad.AnnData(X=counts, obs=obs, var=pd.DataFrame(index=pd.Index(genes.index.astype(str))))
    if layout.coords is not None:
        adata.obsm["spatial"] = layout.coords.astype(float)
        adata.obs["array_row"] = layout.array_pos[:, 0]
        adata.obs["array_col"] = layout.array_pos[:, 1]
    adata.uns["dataset"] = dataset_metadata(spec)
    adata.uns["simulated"] = True
    adata.uns["simulation"] = {"seed": int(seed), "active_modules": [m.name for m in active]}
    return adata, geometries


def simulate_atlas(seed: int = 0, config: SimulationConfig | None = None) -> SimulatedAtlas:
    """Generate the whole atlas: datasets, planted modules, ortholog table.

    Deterministic: one ``default_rng(seed)`` drives every draw, in a fixed order.
    """
    config = config or SimulationConfig()
    rng = np.random.default_rng(seed)
    universe = build_universe(config, rng)
    orthologs, extra_mouse = build_orthologs(universe, config, rng)
    datasets, patterns = [], {}
    for spec in config.datasets:
        adata, geometries = simulate_dataset(spec, universe, extra_mouse, config, seed, rng)
        datasets.append(adata)
        patterns.update(geometries)
    modules = {
        m.name: sorted(universe.index[universe["module"].eq(m.name)].astype(str))
        for m in config.modules
    }
    module_datasets = {m.name: list(m.datasets) for m in config.modules}
    return SimulatedAtlas(
        datasets=datasets,
        modules=modules,
        module_datasets=module_datasets,
        orthologs=orthologs,
        seed=seed,
        config=config,
        spatial_patterns=patterns,
    )


# ---------------------------------------------------------------------------- writing


def gmt_lines(atlas: SimulatedAtlas) -> list[str]:
    """GMT rows: module name, a description (where it is active), its human symbols."""
    specs = {m.name: m for m in atlas.config.modules}
    lines = []
    for name, genes in atlas.modules.items():
        spec = specs.get(name)
        where = ",".join(atlas.module_datasets.get(name, []))
        description = f"simulated module; active in {where}"
        if spec is not None and spec.pattern:
            description += f"; spatial pattern {spec.pattern}"
        lines.append("\t".join([name, description, *genes]))
    return lines


def write_simulated_atlas(atlas: SimulatedAtlas, folder: str | os.PathLike) -> list[Path]:
    """Write ``<name>.h5ad`` per dataset, ``orthologs.tsv`` and ``planted_modules.gmt``.

    Returns the written paths (datasets first, in atlas order).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for adata in atlas.datasets:
        path = folder / f"{adata.uns['dataset']['name']}.h5ad"
        with atomic_path(path) as tmp:
            adata.write_h5ad(tmp)
        written.append(path)
    table = atlas.orthologs.loc[:, list(ORTHOLOG_COLUMNS)]
    tsv = table.to_csv(sep="\t", index=False, lineterminator="\n")
    atomic_write_text(folder / "orthologs.tsv", tsv)
    gmt = "\n".join(gmt_lines(atlas)) + "\n"
    atomic_write_text(folder / "planted_modules.gmt", gmt)
    return [*written, folder / "orthologs.tsv", folder / "planted_modules.gmt"]

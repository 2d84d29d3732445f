"""Which genes datasets share, known before any graph is built.

MuSe-GNN ties datasets together through the genes their graphs share. Graphs are
costly (QC, gene ranking, CS-CORE) and cached, so a training whose datasets cannot
share a single gene must be refused from the gene names alone: the stored datasets'
``var_names``, with mouse symbols renamed to their human orthologs as the graph
builder names its nodes. Sharing genes here is necessary, not sufficient (each graph
keeps only its top genes), so training checks the built graphs again.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ValidationError, WorkspaceError
from ..workspace import Workspace
from .build import map_node_names, ortholog_table_path

NO_SHARED_GENES = (
    "The chosen datasets share no genes, so their embeddings cannot be tied together. "
    "Check species and gene naming (mouse genes need an ortholog table)"
)


def stored_gene_names(workspace: Workspace, name: str) -> list[str]:
    """The gene names of a stored dataset, read without loading its counts."""
    import h5py
    from anndata.io import read_elem

    workspace.dataset(name)  # a clear error for an unknown name
    path = workspace.dataset_path(name)
    try:
        with h5py.File(path, "r") as handle:
            var = read_elem(handle["var"])
    except (OSError, KeyError, ValueError) as exc:
        raise WorkspaceError(
            f"The stored dataset {name!r} ({path}) cannot be read ({exc}); the file is "
            "damaged: delete the dataset and import it again."
        ) from exc
    return [str(gene) for gene in var.index]


def node_names(workspace: Workspace, names: Sequence[str]) -> dict[str, set[str]]:
    """Per dataset, the names its graph nodes can take (human symbols for mouse genes)."""
    table_path = ortholog_table_path(workspace)
    out = {}
    for name in names:
        meta = workspace.dataset(name)
        nodes, _ = map_node_names(stored_gene_names(workspace, name), meta.species, table_path)
        out[name] = set(nodes)
    return out


def any_pair_shares(gene_sets: Sequence[set[str]]) -> bool:
    """True when at least one pair of the sets has a gene in common (or there is one set)."""
    if len(gene_sets) < 2:
        return True
    return any(
        gene_sets[i] & gene_sets[j]
        for i in range(len(gene_sets))
        for j in range(i + 1, len(gene_sets))
    )


def check_datasets_share_genes(workspace: Workspace, names: Sequence[str] | None) -> None:
    """Refuse, before any graph is built, datasets of which no two share a gene."""
    names = list(names or workspace.dataset_names())
    if len(names) < 2:
        return
    if not any_pair_shares(list(node_names(workspace, names).values())):
        raise ValidationError(f"{NO_SHARED_GENES}.")

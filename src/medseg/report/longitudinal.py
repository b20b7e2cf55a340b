"""Lesions matched between a prior and the current scan, and their volume change.

Matching is by overlap in physical space: each current lesion's voxel centres are mapped through
the two images' geometry (origin, spacing, direction) into the prior's voxel grid, and a prior
lesion that receives any of them overlaps it. No registration is done: when the two scans were
positioned differently the overlap is that of the scanner coordinates, and
:attr:`Change.note` says so whenever the geometries differ. Overlap groups (connected sets of
overlapping lesions) make one match each, so a lesion that split or merged is still followed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from medseg.io import Image, geometry_differences
from medseg.report.geometry import index_to_physical, physical_to_index
from medseg.report.lesions import Component, LesionTable

Status = Literal["new", "resolved", "persistent", "merged", "split"]


@dataclass(frozen=True, kw_only=True)
class LesionMatch:
    """One overlap group: current and prior lesion ids, status and volumes (ml).

    ``status`` is ``new`` (no prior lesion), ``resolved`` (no current lesion), ``persistent``
    (one to one), ``merged`` (several prior lesions now one, or many to many) or ``split`` (one
    prior lesion now several). ``change_percent`` is ``None`` for new lesions.
    """

    current_ids: tuple[int, ...]
    prior_ids: tuple[int, ...]
    status: Status
    volume_prior_ml: float
    volume_current_ml: float
    change_percent: float | None


@dataclass(frozen=True, kw_only=True)
class Change:
    """Comparison with a prior scan: matches, counts, total lesion volume change."""

    matches: tuple[LesionMatch, ...]
    new: int
    resolved: int
    total_prior_ml: float
    total_current_ml: float
    total_change_percent: float | None
    same_geometry: bool
    note: str
    prior_lesions: LesionTable


def compare_with_prior(
    image: Image,
    components: list[Component],
    table: LesionTable,
    prior_image: Image,
    prior_components: list[Component],
    prior_table: LesionTable,
) -> Change:
    """Match current lesions with prior lesions of the same class by physical overlap.

    ``components[k]`` must be the component of ``table.lesions[k]`` (likewise for the prior).
    """
    overlaps = _overlaps(image, components, prior_image, prior_components)
    groups = _groups(len(components), len(prior_components), overlaps)
    matches = []
    for current, prior in groups:
        before = sum(prior_table.lesions[j].volume_ml for j in prior)
        after = sum(table.lesions[i].volume_ml for i in current)
        matches.append(
            LesionMatch(
                current_ids=tuple(table.lesions[i].lesion_id for i in current),
                prior_ids=tuple(prior_table.lesions[j].lesion_id for j in prior),
                status=_status(len(current), len(prior)),
                volume_prior_ml=float(before),
                volume_current_ml=float(after),
                change_percent=_percent(before, after),
            )
        )
    differences = geometry_differences(image, prior_image)
    note = (
        "The prior has the same voxel grid; lesions were matched voxel by voxel."
        if not differences
        else "The prior has a different voxel grid ("
        + "; ".join(differences)
        + "); lesions were matched by overlap in scanner coordinates. No registration was "
        "done, so a change in patient position shifts the match."
    )
    return Change(
        matches=tuple(matches),
        new=sum(m.status == "new" for m in matches),
        resolved=sum(m.status == "resolved" for m in matches),
        total_prior_ml=prior_table.total_volume_ml,
        total_current_ml=table.total_volume_ml,
        total_change_percent=_percent(prior_table.total_volume_ml, table.total_volume_ml),
        same_geometry=not differences,
        note=note,
        prior_lesions=prior_table,
    )


def _overlaps(
    image: Image,
    components: list[Component],
    prior_image: Image,
    prior_components: list[Component],
) -> set[tuple[int, int]]:
    """Pairs (current k, prior j) of same-class components that share a physical voxel."""
    pairs = set()
    for k, comp in enumerate(components):
        mapped = physical_to_index(prior_image, index_to_physical(image, comp.indices()))
        voxels = np.rint(mapped).astype(np.int64)
        for j, other in enumerate(prior_components):
            if other.label != comp.label:
                continue
            start = np.array([s.start for s in other.box])
            local = voxels - start
            inside = np.all((local >= 0) & (local < other.mask.shape), axis=1)
            if inside.any() and other.mask[tuple(local[inside].T)].any():
                pairs.add((k, j))
    return pairs


def _groups(
    n_current: int, n_prior: int, pairs: set[tuple[int, int]]
) -> list[tuple[list[int], list[int]]]:
    """Connected components of the bipartite overlap graph, current-first in id order."""
    parent = list(range(n_current + n_prior))

    def find(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for k, j in pairs:
        parent[find(k)] = find(n_current + j)
    groups: dict[int, tuple[list[int], list[int]]] = {}
    for node in range(n_current + n_prior):
        current, prior = groups.setdefault(find(node), ([], []))
        if node < n_current:
            current.append(node)
        else:
            prior.append(node - n_current)
    return sorted(groups.values(), key=lambda g: (not g[0], g[0][:1] or g[1][:1]))


def _status(n_current: int, n_prior: int) -> Status:
    if n_prior == 0:
        return "new"
    if n_current == 0:
        return "resolved"
    if n_current == 1 and n_prior == 1:
        return "persistent"
    return "split" if n_prior == 1 else "merged"


def _percent(before: float, after: float) -> float | None:
    return None if before <= 0 else float((after - before) / before * 100.0)

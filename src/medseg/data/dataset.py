"""Dataset objects shared by every stage: :class:`Case`, :class:`LabelSpec`, :class:`Dataset`.

Loaders for the three supported layouts (nnU-Net v2 raw in :mod:`medseg.data.nnunet`, paired
folders and CSV manifests in :mod:`medseg.data.discover`) all return a :class:`Dataset`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class Case:
    """One training or test case.

    ``image_paths`` holds one file per input channel in channel order (nnU-Net's ``_0000``,
    ``_0001``, ...), or a single folder for a DICOM series. ``label_path`` is ``None`` for
    unlabelled cases. ``rater_paths`` holds one label file per rater when several observers
    annotated the case (``labelsTr/<case>_rater<k>``, in rater order); see ``medseg.weak``.
    """

    case_id: str
    image_paths: tuple[Path, ...]
    label_path: Path | None = None
    rater_paths: tuple[Path, ...] = ()


@dataclass(frozen=True, kw_only=True)
class LabelSpec:
    """Label values and their names, optional nested regions and an ignore label.

    ``labels`` maps a name to its integer value; ``background`` is 0. ``regions`` maps a region
    name to the label values it unites (BraTS-style nested regions, trained with one sigmoid
    each); ``region_order`` is the order in which regions are painted back into a label map.
    ``ignore`` is a label value excluded from losses and metrics.
    """

    labels: dict[str, int]
    regions: dict[str, tuple[int, ...]] = field(default_factory=dict)
    region_order: tuple[int, ...] = ()
    ignore: int | None = None

    @property
    def values(self) -> tuple[int, ...]:
        """All label values, background and ignore included, sorted."""
        return tuple(sorted(set(self.labels.values())))

    @property
    def foreground(self) -> dict[str, int]:
        """Name -> value for every label except background (0) and ignore."""
        return {n: v for n, v in self.labels.items() if v != 0 and v != self.ignore}

    @property
    def uses_regions(self) -> bool:
        return bool(self.regions)

    @property
    def allowed_values(self) -> frozenset[int]:
        """Every value a label file may contain: labels, region members, ignore and 0."""
        values = {0, *self.labels.values()}
        for members in self.regions.values():
            values.update(members)
        if self.ignore is not None:
            values.add(self.ignore)
        return frozenset(values)


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """A set of cases with shared label definitions and channel names.

    ``channel_names`` maps channel index to modality name (``"CT"``, ``"T1"``...); the name
    drives normalisation. ``file_ending`` is e.g. ``".nii.gz"``. ``test_cases`` are the
    held-out cases (nnU-Net ``imagesTs``), usually unlabelled. ``declared_num_training`` is
    ``numTraining`` from an nnU-Net ``dataset.json`` (``None`` for other layouts); the dataset
    check compares it with the cases found.
    """

    root: Path
    name: str
    cases: tuple[Case, ...]
    labels: LabelSpec
    channel_names: dict[int, str]
    file_ending: str = ".nii.gz"
    test_cases: tuple[Case, ...] = ()
    declared_num_training: int | None = None

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def labelled(self) -> tuple[Case, ...]:
        return tuple(c for c in self.cases if c.label_path is not None)

    def case(self, case_id: str) -> Case:
        for case in (*self.cases, *self.test_cases):
            if case.case_id == case_id:
                return case
        raise KeyError(case_id)

"""The report's public functions: :func:`build_report`, :func:`write_report`, :func:`report_files`.

``build_report`` measures images already in memory; ``write_report`` renders a report to
``report.json`` (schema in :mod:`medseg.report.schema`), ``summary.txt``, ``structures.csv``,
``lesions.csv``, ``report.html`` and ``report.pdf``; ``report_files`` reads the files named on
the command line and does both.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from medseg._atomic import write_text_atomic
from medseg._typing import PathLikeStr
from medseg.errors import ConfigError, ImageWriteError
from medseg.io import Image, read_image, write_dicom_seg
from medseg.report.clinical import ClinicalReport
from medseg.report.findings import PriorScan, ReportOptions, compute_findings
from medseg.report.inputs import (
    LabelInfo,
    case_id_from,
    default_names,
    modality_of,
    read_label_info,
    read_segmentation,
    segmentation_on_image,
)
from medseg.report.render import render_figures, write_html, write_pdf
from medseg.report.summary import Summariser, plain_summary
from medseg.report.tables import lesion_rows, structure_rows, write_csv

logger = logging.getLogger(__name__)

Format = Literal["json", "csv", "html", "pdf"]
ALL_FORMATS: tuple[Format, ...] = ("json", "csv", "html", "pdf")


def build_report(
    image: Image,
    segmentation: Image,
    *,
    labels: LabelInfo | None = None,
    lesion_labels: Sequence[str | int] | None = None,
    prior: PriorScan | None = None,
    uncertainty: Image | None = None,
    options: ReportOptions | None = None,
    summariser: Summariser | None = None,
    case_id: str = "case",
    sources: dict[str, str] | None = None,
) -> ClinicalReport:
    """Measure one case and write its summary.

    Parameters
    ----------
    image, segmentation : Image
        ``(C, Z, Y, X)`` intensities and ``(1, Z, Y, X)`` labels on the same grid.
    labels : LabelInfo, optional
        Label and channel names (and fingerprint); default ``label_<v>`` for each value found.
    lesion_labels : sequence of str or int, optional
        Lesion classes; default: label names that say lesion, tumour, metastasis, nodule...
    prior : PriorScan, optional
        The earlier time point.
    uncertainty : Image, optional
        ``(1, Z, Y, X)`` map in [0, 1] on the image's grid.
    options : ReportOptions, optional
        Quality-flag thresholds.
    summariser : callable(dict) -> str, optional
        A local function given the report dictionary; its text is stored as ``custom_summary``.
    case_id : str
    sources : dict, optional
        File names by role, recorded in the report and used in error messages.

    Returns
    -------
    ClinicalReport
    """
    info = labels or LabelInfo(names=default_names(segmentation))
    modality = modality_of(image, info.channel_names)
    channels = info.channel_names or ({0: modality} if modality and image.num_channels == 1 else {})
    findings = compute_findings(
        image,
        segmentation,
        names=info.names,
        lesion_labels=tuple(lesion_labels) if lesion_labels is not None else None,
        channel_names=channels,
        modality=modality,
        prior=prior,
        uncertainty=uncertainty,
        fingerprint=info.fingerprint,
        options=options,
        case_id=case_id,
        sources=sources,
    )
    report = ClinicalReport(findings, plain_summary(findings))
    if summariser is None:
        return report
    return ClinicalReport(findings, report.summary, summariser(report.to_dict()))


def write_report(
    report: ClinicalReport,
    image: Image,
    segmentation: Image,
    out_dir: PathLikeStr,
    *,
    formats: Sequence[Format] = ALL_FORMATS,
) -> dict[str, Path]:
    """Write the report files into ``out_dir`` (created); returns kind -> path.

    ``image`` and ``segmentation`` are the arrays the report was built from; the HTML and PDF
    figures are drawn from them.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ImageWriteError(f"{out}: cannot create output folder ({err.strerror})") from err
    paths: dict[str, Path] = {}
    if "json" in formats:
        paths["json"] = out / "report.json"
        write_text_atomic(json.dumps(report.to_dict(), indent=2) + "\n", paths["json"])
        paths["summary"] = out / "summary.txt"
        write_text_atomic(report.summary + "\n", paths["summary"])
    if "csv" in formats:
        paths["structures_csv"] = write_csv(structure_rows(report.findings), out / "structures.csv")
        paths["lesions_csv"] = write_csv(lesion_rows(report.findings), out / "lesions.csv")
    pictures = render_figures(report, image, segmentation) if {"html", "pdf"} & set(formats) else []
    if "html" in formats:
        paths["html"] = write_html(report, pictures, out / "report.html")
    if "pdf" in formats:
        paths["pdf"] = write_pdf(report, pictures, out / "report.pdf")
    return paths


def report_files(
    image: PathLikeStr,
    segmentation: PathLikeStr,
    out_dir: PathLikeStr,
    *,
    label_names: PathLikeStr | None = None,
    lesion_labels: Sequence[str | int] | None = None,
    prior: tuple[PathLikeStr, PathLikeStr] | None = None,
    uncertainty: PathLikeStr | None = None,
    options: ReportOptions | None = None,
    summariser: Summariser | None = None,
    formats: Sequence[Format] = ALL_FORMATS,
    dicom_seg: bool = False,
) -> tuple[ClinicalReport, dict[str, Path]]:
    """Read an image, its segmentation and optional extras, then build and write the report.

    Parameters are the paths behind :func:`build_report`'s objects; ``label_names`` is a
    ``dataset.json`` or a model folder. A segmentation (or prior segmentation) may be a DICOM
    Segmentation file: see :func:`~medseg.report.inputs.segmentation_on_image`. With
    ``dicom_seg`` the image must be a DICOM series folder and the segmentation is also written
    as a DICOM Segmentation of it, ``seg.dcm`` (kind ``"dicom_seg"``), segments named by the
    label names. Returns the report and the written paths.

    Raises
    ------
    ConfigError
        ``dicom_seg`` for an image that is not a DICOM series folder.
    """
    image_path, seg_path = Path(image), Path(segmentation)
    if dicom_seg and not image_path.is_dir():
        raise ConfigError(
            f"{image_path}: a DICOM-SEG references a DICOM series; give the series folder as IMAGE"
        )
    sources = {"image": str(image_path), "segmentation": str(seg_path)}
    img = read_image(image_path)
    given = read_label_info(Path(label_names)) if label_names is not None else None
    seg, info = segmentation_on_image(
        read_segmentation(seg_path), img, given, names=(str(seg_path), str(image_path))
    )
    prior_scan = None
    if prior is not None:
        sources["prior_image"], sources["prior_segmentation"] = str(prior[0]), str(prior[1])
        prior_img = read_image(prior[0])
        prior_seg, _ = segmentation_on_image(
            read_segmentation(prior[1]), prior_img, info, names=(str(prior[1]), str(prior[0]))
        )
        prior_scan = PriorScan(prior_img, prior_seg)
    unc = None
    if uncertainty is not None:
        sources["uncertainty"] = str(uncertainty)
        unc = read_image(uncertainty)
    for role, read in (("image", img), ("segmentation", seg)):
        if read.meta.get("series_uid"):  # DICOM input: the series a PACS knows it by
            sources[f"{role}_series_uid"] = str(read.meta["series_uid"])
    report = build_report(
        img,
        seg,
        labels=info,
        lesion_labels=lesion_labels,
        prior=prior_scan,
        uncertainty=unc,
        options=options,
        summariser=summariser,
        case_id=case_id_from(image_path),
        sources=sources,
    )
    paths = write_report(report, img, seg, out_dir, formats=formats)
    if dicom_seg:
        names = info.names if info is not None else default_names(seg)
        paths["dicom_seg"] = write_dicom_seg(seg, image_path, names, Path(out_dir) / "seg.dcm")
    return report, paths

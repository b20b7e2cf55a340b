"""medseg.data speed: example generation per case, and the dataset check against a plain loop.

Plain script: ``python benchmarks/bench_data.py [--cases 6] [--repeats 3]``.

* Example generation: seconds per case of ``make_brain_example`` at 2 mm (template resampling
  is cached and done once in the warm-up), with no peer; the goal is about 1 s per case.
* Dataset check: ``check_dataset`` (threads, then one worker) against the loop nnU-Net's
  ``verify_dataset_integrity`` runs per case -- SimpleITK reads of image and label, shape and
  spacing comparison, ``np.unique`` of the label and a NaN test -- written out here because
  nnunetv2 cannot be installed beside the CPU torch. Both must flag the same cases, on the
  clean example and on a copy with an undeclared label value in one case.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from benchtools import median_seconds
from medseg.data import check_dataset, load_dataset
from medseg.data.example import make_brain_example
from medseg.io import read_image, write_image


def nnunet_style_check(root: Path, allowed: set[int]) -> set[str]:
    """Case ids failing the per-case checks of nnU-Net's integrity check (sequential)."""
    failing = set()
    for label_path in sorted((root / "labelsTr").iterdir()):
        case_id = label_path.name[: -len(".nii.gz")]
        image = sitk.ReadImage(str(root / "imagesTr" / f"{case_id}_0000.nii.gz"))
        label = sitk.ReadImage(str(label_path))
        image_array = sitk.GetArrayFromImage(image)
        label_array = sitk.GetArrayFromImage(label)
        bad = (
            image_array.shape != label_array.shape
            or not np.allclose(image.GetSpacing(), label.GetSpacing())
            or not set(np.unique(label_array).tolist()) <= allowed
            or bool(np.isnan(image_array).any())
        )
        if bad:
            failing.add(case_id)
    return failing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        counter = iter(range(10**6))

        def generate() -> Path:
            return make_brain_example(tmp_path / f"gen{next(counter)}", cases=args.cases)

        per_case = median_seconds(generate, args.repeats) / args.cases
        print(f"example brain 2 mm, {args.cases} cases      | medseg {per_case:6.3f} s per case")

        root = tmp_path / "gen0"
        broken = tmp_path / "broken"
        shutil.copytree(root, broken)
        label_path = broken / "labelsTr" / "BrainExample_001.nii.gz"
        label = read_image(label_path)
        array = label.array.copy()
        array.flat[0] = 5
        write_image(label.with_array(array), label_path)
        for name, folder in (("clean", root), ("one bad label", broken)):
            dataset = load_dataset(folder)
            allowed = set(dataset.labels.allowed_values)
            ours = {p.case_id for p in check_dataset(dataset).errors}
            peer = nnunet_style_check(folder, allowed)
            if ours != peer:
                raise SystemExit(f"disagreement on {name}: medseg {ours} vs loop {peer}")
            threaded = median_seconds(lambda d=dataset: check_dataset(d), args.repeats)
            single = median_seconds(lambda d=dataset: check_dataset(d, workers=1), args.repeats)
            loop = median_seconds(
                lambda f=folder, a=allowed: nnunet_style_check(f, a), args.repeats
            )
            for label_text, seconds in (("threads", threaded), ("1 worker", single)):
                print(
                    f"check {name:<13} {label_text:<8} | medseg {seconds:6.3f} s | "
                    f"nnU-Net-style loop {loop:6.3f} s | {loop / seconds:4.2f}x | "
                    f"flagged {sorted(ours) or 'none'} (same)"
                )


if __name__ == "__main__":
    main()

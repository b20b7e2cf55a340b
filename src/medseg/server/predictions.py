"""The trained model's starting masks and uncertainty, computed once per case and cached.

Each case's label map is written to ``OUTPUT/.predictions/<case>.nii.gz`` and its mean
predictive entropy (0-1, averaged over the image) to the edit log, so a restart does not
predict again. With ``precompute`` a background thread predicts every case after start, which
is what orders "next case" by uncertainty; opening a case not yet predicted predicts it at once.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import numpy.typing as npt

from medseg.errors import MedsegError
from medseg.infer.files import read_case_image
from medseg.infer.prediction import ImagePredictor
from medseg.io import Image, read_image, write_image
from medseg.server.catalog import CaseCatalog
from medseg.server.store import EditLog

logger = logging.getLogger(__name__)


class ModelPredictions:
    """Cached predictions of ``predictor`` on the catalog's cases."""

    def __init__(self, predictor: ImagePredictor, catalog: CaseCatalog, log: EditLog) -> None:
        self.predictor = predictor
        self.catalog = catalog
        self.log = log
        self.folder = log.path.parent / ".predictions"
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return str(self.predictor.model.path)

    def _path(self, case_id: str):  # type: ignore[no-untyped-def]
        return self.folder / f"{case_id}.nii.gz"

    def labels(self, case_id: str, image: Image | None = None) -> npt.NDArray[np.uint8]:
        """The model's label map of a case, shape (Z, Y, X) or (Y, X), uint8."""
        path = self._path(case_id)
        with self._lock:
            if path.is_file() and case_id in self.log.uncertainties():
                return read_image(path).array[0].astype(np.uint8)
            if image is None:
                image = read_case_image(self.catalog.get(case_id))
            result = self.predictor.predict_image(image, uncertainty=True, case_id=case_id)
            labels = result.labels.array[0].astype(np.uint8)
            write_image(result.labels.with_array(labels[None]), path)
            entropy = result.uncertainty.get("entropy")
            mean = float(entropy.array.mean()) if entropy is not None else None
            self.log.set_uncertainty(case_id, mean)
            return labels

    def start(self) -> None:
        """Predict every case not yet cached, in a background thread."""
        self._thread = threading.Thread(target=self._run, name="medseg-precompute", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        done = self.log.uncertainties()
        for case_id in self.catalog.ids:
            if self._stop.is_set():
                return
            if case_id in done and self._path(case_id).is_file():
                continue
            try:
                self.labels(case_id)
            except (MedsegError, OSError, RuntimeError, ValueError) as err:
                logger.warning("prediction of %s failed: %s", case_id, err)

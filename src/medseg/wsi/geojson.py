"""GeoJSON polygons as QuPath exports and imports them: instances out, annotations in.

Coordinates are level-0 slide pixels ``[x, y]`` (GeoJSON order), as QuPath writes them. Each
instance becomes a ``Feature`` with a ``Polygon`` (outer ring only, closed) and the properties
``objectType`` (``"detection"`` for nuclei, ``"annotation"`` for regions), ``classification``
(``{"name": ...}``) and ``measurements`` (``{"area_px": ...}``).

Reading checks every polygon: at least 4 positions, closed, finite, not self-intersecting. A bad
one is a :class:`~medseg.errors.DatasetError` naming the file, the feature and the fix.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from medseg._atomic import write_text_atomic
from medseg.errors import DatasetError


@dataclass(frozen=True, kw_only=True)
class Annotation:
    """One polygon read from GeoJSON.

    Attributes
    ----------
    name : str
        Classification name (``""`` when absent).
    exterior : ndarray of float64, shape (N, 2)
        Closed outer ring, ``(x, y)`` level-0 pixels.
    holes : tuple of ndarray
        Inner rings, same layout.
    """

    name: str
    exterior: npt.NDArray[np.float64]
    holes: tuple[npt.NDArray[np.float64], ...] = ()


def instances_to_geojson(
    labels: npt.NDArray[np.integer],
    *,
    offset: tuple[float, float] = (0.0, 0.0),
    downsample: float = 1.0,
    object_type: str = "detection",
    classification: str | None = None,
) -> dict[str, Any]:
    """A FeatureCollection with one polygon per instance.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance map (0 background).
    offset : tuple of 2 float
        Level-0 ``(y, x)`` of the map's top-left pixel corner.
    downsample : float
        Level-0 pixels per map pixel.
    object_type, classification : str
        QuPath's object type and class name.

    Returns
    -------
    dict
        GeoJSON, ready for ``json.dumps``.
    """
    from scipy import ndimage
    from skimage.measure import find_contours

    features = []
    for index, box in enumerate(ndimage.find_objects(np.asarray(labels)), start=1):
        if box is None:
            continue
        mask = np.pad(np.asarray(labels)[box] == index, 1)
        contours = find_contours(mask.astype(np.float32), 0.5)
        if not contours:
            continue
        ring = max(contours, key=len)  # (row, col) in the padded crop, on pixel centres
        ys = (ring[:, 0] - 1 + box[0].start + 0.5) * downsample + offset[0]
        xs = (ring[:, 1] - 1 + box[1].start + 0.5) * downsample + offset[1]
        coords = np.round(np.stack([xs, ys], axis=1), 2).tolist()
        if coords[0] != coords[-1]:
            coords.append(coords[0])
        properties: dict[str, Any] = {
            "objectType": object_type,
            "id": index,
            "measurements": {"area_px": int(mask.sum())},
        }
        if classification is not None:
            properties["classification"] = {"name": classification}
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [coords]},
                "properties": properties,
            }
        )
    return {"type": "FeatureCollection", "features": features}


def write_geojson(collection: dict[str, Any], path: Path | str) -> Path:
    """Write GeoJSON atomically (compact, one file)."""
    path = Path(path)
    write_text_atomic(json.dumps(collection, separators=(",", ":")), path)
    return path


def read_annotations(path: Path | str) -> list[Annotation]:
    """Polygons of a GeoJSON file (FeatureCollection, Feature list or single Feature).

    Raises
    ------
    DatasetError
        Unreadable JSON, a geometry that is not a (Multi)Polygon, or an invalid ring.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DatasetError(f"{path}: not readable GeoJSON ({err})") from err
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features", [])
    elif isinstance(data, list):
        features = data
    elif isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    else:
        raise DatasetError(f"{path}: expected a GeoJSON FeatureCollection or Feature")
    annotations = []
    for number, feature in enumerate(features):
        where = f"{path}: feature {number}"
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        if not isinstance(geometry, dict):
            raise DatasetError(f"{where} has no geometry")
        kind = geometry.get("type")
        if kind == "Polygon":
            polygons = [geometry.get("coordinates")]
        elif kind == "MultiPolygon":
            polygons = geometry.get("coordinates") or []
        else:
            raise DatasetError(f"{where}: geometry {kind!r} is not a Polygon or MultiPolygon")
        name = _class_name(feature.get("properties") or {})
        for polygon in polygons:
            if not isinstance(polygon, list) or not polygon:
                raise DatasetError(f"{where}: a polygon needs at least one ring")
            rings = [_ring(ring, where) for ring in polygon]
            annotations.append(Annotation(name=name, exterior=rings[0], holes=tuple(rings[1:])))
    return annotations


def _class_name(properties: dict[str, Any]) -> str:
    value = properties.get("classification")
    if isinstance(value, dict):
        return str(value.get("name", ""))
    return "" if value is None else str(value)


def _ring(ring: Any, where: str) -> npt.NDArray[np.float64]:
    fix = "fix or delete it in QuPath (Objects > Simplify / Fill holes) and export again"
    try:
        points = np.asarray(ring, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DatasetError(f"{where}: ring coordinates are not numbers; {fix}") from err
    if points.ndim != 2 or points.shape[1] < 2 or points.shape[0] < 4:
        raise DatasetError(f"{where}: a ring needs at least 4 [x, y] positions; {fix}")
    points = points[:, :2]
    if not np.all(np.isfinite(points)):
        raise DatasetError(f"{where}: ring has non-finite coordinates; {fix}")
    if not np.array_equal(points[0], points[-1]):
        raise DatasetError(f"{where}: ring is not closed (first and last positions differ); {fix}")
    if _area(points) == 0:
        raise DatasetError(f"{where}: ring has zero area; {fix}")
    if _self_intersects(points):
        raise DatasetError(f"{where}: ring intersects itself; {fix}")
    return points


def _area(points: npt.NDArray[np.float64]) -> float:
    x, y = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1])))


def _self_intersects(points: npt.NDArray[np.float64], max_segments: int = 4000) -> bool:
    """Proper crossings of non-adjacent edges (rings over ``max_segments`` edges: unchecked)."""
    a, b = points[:-1], points[1:]
    n = len(a)
    if n < 4 or n > max_segments:
        return False

    def orient(p: Any, q: Any, r: Any) -> Any:
        return np.sign((q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1])
                       - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0]))  # fmt: skip

    i, j = np.triu_indices(n, k=2)
    keep = ~((i == 0) & (j == n - 1))  # first and last edges share the closing vertex
    i, j = i[keep], j[keep]
    p1, p2, q1, q2 = a[i], b[i], a[j], b[j]
    crosses = (orient(p1, p2, q1) * orient(p1, p2, q2) < 0) & (
        orient(q1, q2, p1) * orient(q1, q2, p2) < 0
    )
    return bool(crosses.any())


def rasterize(
    annotations: list[Annotation],
    shape: tuple[int, int],
    *,
    classes: dict[str, int],
    offset: tuple[float, float] = (0.0, 0.0),
    downsample: float = 1.0,
) -> npt.NDArray[np.uint8]:
    """Draw annotations into a label image (later ones on top, holes cleared to 0).

    Parameters
    ----------
    annotations : list of Annotation
    shape : tuple of 2 int
        ``(height, width)`` of the image, whose top-left corner is at level-0 ``offset``
        ``(y, x)`` and whose pixels are ``downsample`` level-0 pixels.
    classes : dict of str to int
        Label value per classification name; annotations of other classes are skipped.

    Returns
    -------
    ndarray of uint8, shape ``shape``
    """
    from skimage.draw import polygon as draw_polygon

    labels = np.zeros(shape, dtype=np.uint8)
    for annotation in annotations:
        value = classes.get(annotation.name)
        if value is None:
            continue
        for ring, fill in ((annotation.exterior, value), *((h, 0) for h in annotation.holes)):
            rows = (ring[:, 1] - offset[0]) / downsample - 0.5
            cols = (ring[:, 0] - offset[1]) / downsample - 0.5
            rr, cc = draw_polygon(rows, cols, shape)
            labels[rr, cc] = fill
    return labels


def bounds(annotations: list[Annotation]) -> tuple[float, float, float, float]:
    """``(y0, x0, y1, x1)`` level-0 bounds of all annotations (NaN when empty)."""
    if not annotations:
        return (math.nan,) * 4  # type: ignore[return-value]
    points = np.concatenate([a.exterior for a in annotations])
    return (points[:, 1].min(), points[:, 0].min(), points[:, 1].max(), points[:, 0].max())

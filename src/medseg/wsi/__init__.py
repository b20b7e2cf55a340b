"""Whole-slide images: lazy pyramid reads, tissue/pen masks, tiled coarse-to-fine inference.

Start with :class:`Slide` and :func:`tissue_mask` (see ``docs/wsi.md``)::

    from medseg.wsi import Slide, tissue_mask

    with Slide("slide.svs") as slide:
        mask = tissue_mask(slide)          # 0 glass, 1 tissue, 2 pen at 8 µm/px
"""

from medseg._lazy import lazy_getattr

_EXPORTS = {
    "DEFAULT_ASSUMED_MPP": "medseg.wsi.slide",
    "LevelInfo": "medseg.wsi.slide",
    "Slide": "medseg.wsi.slide",
    "SyntheticSlide": "medseg.wsi.synthetic",
    "SyntheticSlideSpec": "medseg.wsi.synthetic",
    "write_synthetic_slide": "medseg.wsi.synthetic",
    "MASK_LABELS": "medseg.wsi.tissue",
    "TissueMask": "medseg.wsi.tissue",
    "TissueSettings": "medseg.wsi.tissue",
    "classify_rgb": "medseg.wsi.tissue",
    "tissue_mask": "medseg.wsi.tissue",
    "write_mask": "medseg.wsi.tissue",
    "TileGrid": "medseg.wsi.grid",
    "SlidePredictionReport": "medseg.wsi.tiled",
    "TileModel": "medseg.wsi.tiled",
    "TiledSettings": "medseg.wsi.tiled",
    "predict_slide": "medseg.wsi.tiled",
    "predictor_tile_model": "medseg.wsi.models",
    "segment_slide": "medseg.wsi.models",
    "looks_like_slide": "medseg.wsi.slide",
    "write_label_pyramid": "medseg.wsi.pyramid",
    "NucleiSpec": "medseg.wsi.nuclei",
    "synthetic_nuclei": "medseg.wsi.nuclei",
    "watershed_nuclei": "medseg.wsi.nuclei",
    "instances_from_maps": "medseg.wsi.nuclei",
    "NucleiHead": "medseg.wsi.nuclei_net",
    "NucleiHeadConfig": "medseg.wsi.nuclei_net",
    "train_nuclei_head": "medseg.wsi.nuclei_net",
    "Annotation": "medseg.wsi.geojson",
    "instances_to_geojson": "medseg.wsi.geojson",
    "read_annotations": "medseg.wsi.geojson",
    "write_geojson": "medseg.wsi.geojson",
    "rasterize": "medseg.wsi.geojson",
    "extract_tiles": "medseg.wsi.tiles",
    "hed_jitter": "medseg.wsi.tiles",
    "Corruption": "medseg.wsi.robustness",
    "RobustnessRow": "medseg.wsi.robustness",
    "brightfield_from_fluorescence": "medseg.wsi.robustness",
    "corrupt": "medseg.wsi.robustness",
    "default_corruptions": "medseg.wsi.robustness",
    "robustness_report": "medseg.wsi.robustness",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)

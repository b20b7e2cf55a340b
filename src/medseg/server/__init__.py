"""``medseg serve``: a browser viewer and HTTP API for interactive correction of segmentations.

Quick start::

    from medseg.server import ServeConfig, create_app
    app = create_app(ServeConfig(data="Dataset001_Brain", model="models/brain"))
    # run with uvicorn.run(app, host="127.0.0.1", port=8000), or `medseg serve DATA`

See ``docs/serve.md`` for the page, the API (OpenAPI at ``/docs``) and the safety rules.
"""

from __future__ import annotations

from medseg._lazy import lazy_getattr

_EXPORTS = {
    "ServeConfig": "medseg.server.config",
    "create_app": "medseg.server.app",
    "CaseCatalog": "medseg.server.catalog",
    "EditLog": "medseg.server.store",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)

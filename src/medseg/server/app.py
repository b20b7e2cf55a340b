"""The FastAPI application: lifespan loading, safety middleware, error mapping, routers.

The engine, the model and the case listing are loaded once, in the lifespan, before the first
request. Every :class:`~medseg.errors.MedsegError` becomes a JSON ``{"detail": message}`` with
the 4xx status of :data:`medseg.server.errors.STATUS`; request bodies that fail validation get
FastAPI's 422. Two pure ASGI middlewares guard every request: the token (when the server has
one) and the body size limit.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from medseg import __version__
from medseg.errors import MedsegError
from medseg.interactive.engine import Engine
from medseg.server.config import ServeConfig
from medseg.server.errors import status_for

logger = logging.getLogger(__name__)


def resolve_engine(spec: str | None) -> Engine:
    """The interactive engine for ``--engine``: universal (default), classical, or a folder.

    ``"universal"`` (also spelled ``"learned"``) is the promptable model shipped inside the
    package. Without a spec it is used when installed, else the random walker (logged as a
    warning, so the choice is never silent).
    """
    from medseg.interactive.engine import UNIVERSAL, load_engine

    if spec is not None:
        return load_engine(spec)
    try:
        return load_engine(UNIVERSAL)
    except MedsegError as err:
        logger.warning("shipped interactive model not available (%s); using 'classical'", err)
        return load_engine("classical")


def _json(status: int, detail: str) -> tuple[dict[str, Any], bytes]:
    body = json.dumps({"detail": detail}).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
    }
    return start, body


class GuardMiddleware:
    """Refuse requests without the token (401) and bodies over ``max_body_bytes`` (413)."""

    def __init__(self, app: Any, *, token: str | None, max_body_bytes: int) -> None:
        self.app = app
        self.token = token
        self.max_body_bytes = max_body_bytes

    def _authorised(self, scope: dict[str, Any]) -> bool:
        if self.token is None:
            return True
        given = ""
        for key, value in scope.get("headers", []):
            if key == b"authorization" and value.startswith(b"Bearer "):
                given = value[7:].decode("latin-1")
        if not given:
            from urllib.parse import parse_qs

            given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        return hmac.compare_digest(given.encode(), self.token.encode())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._authorised(scope):
            start, body = _json(401, "missing or wrong token (Authorization: Bearer TOKEN)")
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        for key, value in scope.get("headers", []):
            if key == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                start, body = _json(413, f"request body over {self.max_body_bytes} bytes")
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            start, body = _json(413, f"request body over {limit} bytes")
            await send(start)
            await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    """Raised inside the ASGI receive channel when a streamed body passes the limit."""


def create_app(
    config: ServeConfig, *, engine: Engine | None = None, predictor: Any | None = None
) -> FastAPI:
    """Build the app. ``engine`` / ``predictor`` replace what ``config`` would load (tests).

    Parameters
    ----------
    config : ServeConfig
    engine : Engine, optional
        Interactive engine; by default :func:`resolve_engine` of ``config.engine``.
    predictor : medseg.infer.Predictor, optional
        Trained model; by default loaded from ``config.model`` when given (a model folder or
        an ensemble folder, :func:`medseg.infer.load_predictor`).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from medseg.server.catalog import CaseCatalog
        from medseg.server.predictions import ModelPredictions
        from medseg.server.state import ServerState
        from medseg.server.store import EditLog

        model = predictor
        if model is None and config.model is not None:
            from medseg.infer import load_predictor

            model = load_predictor(config.model, device="auto")
        labels = dict(model.model.plan.labels) if model is not None else None
        catalog = CaseCatalog(config.data, model_labels=labels)
        log = EditLog(config.output_dir / "edits.sqlite")
        predictions = ModelPredictions(model, catalog, log) if model is not None else None
        chosen = engine if engine is not None else resolve_engine(config.engine)
        app.state.medseg = ServerState(config, chosen, catalog, log, predictions)
        if predictions is not None and config.precompute:
            predictions.start()
        try:
            yield
        finally:
            if predictions is not None:
                predictions.stop()
            log.close()

    app = FastAPI(
        title="medseg serve",
        version=__version__,
        description="Interactive correction of segmentations: see docs/serve.md.",
        lifespan=lifespan,
    )

    @app.exception_handler(MedsegError)
    async def medseg_error(request: Request, error: MedsegError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=status_for(error))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # The offending input is not echoed back: it may hold NaN, which JSON cannot carry.
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in error.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    from medseg.server import routes_cases, routes_page, routes_sessions, routes_text

    app.include_router(routes_cases.router)
    app.include_router(routes_sessions.router)
    app.include_router(routes_text.router)
    app.include_router(routes_page.router)
    app.mount("/static", StaticFiles(directory=routes_page.STATIC), name="static")
    app.add_middleware(GuardMiddleware, token=config.token, max_body_bytes=config.max_body_bytes)
    return app

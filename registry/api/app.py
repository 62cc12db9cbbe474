"""The FastAPI application: routes, error mapping, body limit, and the serving cache's life.

Every error answers JSON `{"detail": "..."}` with the status SPEC §4 names; nothing a
client sends can produce a 500.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.api.routes import features, health, labels, rollouts, sync, usage
from registry.api.serving import Serving
from registry.config import Settings, span
from registry.errors import (
    PromptregError,
    http_status,
)
from registry.rollouts.controller import Controller
from registry.store.db import ensure_database
from registry.tokens import warm_up

log = logging.getLogger("promptreg.api")
MAX_BODY_BYTES = 1_048_576


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length":
                if not value.isdigit() or int(value) > self.limit:
                    await _too_large(send, self.limit)
                    return
                await self.app(scope, receive, send)
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                # raised inside the app's receive(): FastAPI passes an HTTPException through
                # to the app's handler, which answers 413 with a JSON detail
                raise StarletteHTTPException(413, f"request body over {self.limit} bytes")
            return message

        await self.app(scope, counted, send)


async def _too_large(send: Send, limit: int) -> None:
    body = b'{"detail":"request body over %d bytes"}' % limit
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    poll_s: float = 0.05,
    controller_tick_s: float | None = 0.25,
) -> FastAPI:
    """The API over a database at the newest migration (refuses one behind it).

    `controller_tick_s`: how often the rollout controller looks for due decisions (None:
    no controller in this app, e.g. a test that drives decisions itself).
    """
    settings = settings or Settings()
    engine = engine or ensure_database(settings.database_url)
    serving = Serving(engine, poll_s=poll_s)
    controller = (
        Controller(engine, tick_s=controller_tick_s, retention=span(settings.usage_retention))
        if controller_tick_s is not None
        else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(warm_up)  # seconds of imports, before the first request
        # The catalog and tokenizers are millions of long-lived objects: keep the cyclic
        # garbage collector from walking them again on every full collection (those walks
        # were 100 ms stalls of the event loop under load).
        gc.collect()
        gc.freeze()
        serving.start()
        if controller is not None:
            controller.start()
        try:
            yield
        finally:
            if controller is not None:
                controller.stop()
            serving.stop()

    app = FastAPI(
        title="promptreg",
        summary="Versioned prompts and guardrail policies, served and rolled back.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.serving = serving
    app.state.controller = controller

    @app.exception_handler(PromptregError)
    async def domain_error(_: Request, exc: PromptregError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=http_status(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail: Any = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return JSONResponse({"detail": detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(DataError)
    async def unstorable(_: Request, exc: DataError) -> JSONResponse:
        return JSONResponse({"detail": "a value cannot be stored or compared"}, 422)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse({"detail": "internal error; see the server log"}, status_code=500)

    for module in (features, labels, rollouts, sync, usage, health):
        app.include_router(module.router)
    from registry.ui import install  # the dashboard at /ui (SPEC §11)

    install(app)
    app.add_middleware(BodyLimit)
    return app

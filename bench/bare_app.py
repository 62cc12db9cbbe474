"""The baseline of `bench/api.py`: a bare FastAPI app answering pre-encoded bytes from memory.

It serves the same paths as promptreg's resolve and render routes with the exact bytes
promptreg answered for them (read once from the JSON file named by `BENCH_BARE_BODIES`:
`{"resolve": {name: base64}, "render": {name: base64}}`). No auth, no validation, no
cache logic, no body parsing: one dict lookup in an `async def` route with a path
parameter, returned as `Response(body, media_type="application/json")`.

    BENCH_BARE_BODIES=bodies.json uvicorn bench.bare_app:app
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from fastapi import FastAPI, Response


def _load(env: str = "BENCH_BARE_BODIES") -> tuple[dict[str, bytes], dict[str, bytes]]:
    path = os.environ.get(env)
    if not path:
        return {}, {}
    data = json.loads(Path(path).read_text())
    decode = base64.b64decode
    return (
        {name: decode(body) for name, body in data.get("resolve", {}).items()},
        {name: decode(body) for name, body in data.get("render", {}).items()},
    )


RESOLVE, RENDER = _load()
app = FastAPI(title="bare baseline")


@app.get("/v1/features/{name}")
async def resolve(name: str) -> Response:
    """The bytes promptreg answered for this feature."""
    return Response(RESOLVE[name], media_type="application/json")


@app.post("/v1/features/{name}/render")
async def render(name: str) -> Response:
    """The bytes promptreg's render answered for this feature (the request body is not read)."""
    return Response(RENDER[name], media_type="application/json")


@app.get("/healthz")
async def healthz() -> Response:
    """Liveness, for the bench's start-up wait."""
    return Response(b'{"status":"ok"}', media_type="application/json")

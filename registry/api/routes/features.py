"""Reading features: list, resolve (ETag), render, versions, diff."""

from __future__ import annotations

import difflib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from registry import labels
from registry.api.deps import ReaderDep, ServingDep, SessionDep, SettingsDep
from registry.api.schemas import (
    DiffOut,
    FeatureList,
    RenderIn,
    RenderOut,
    ResolvedVersion,
    VersionList,
)
from registry.api.serving import Served, encode, render_key
from registry.errors import CatalogError, RenderError
from registry.request import prepare
from registry.spec.load import Feature
from registry.tokens import Catalog

router = APIRouter(prefix="/v1/features", tags=["features"])
LabelQuery = Annotated[
    str | None, Query(max_length=200, description="Label (default: production).")
]
VersionQuery = Annotated[int | None, Query(ge=1, description="A version number.")]
JSON = "application/json"


@router.get("", response_model=FeatureList)
def list_features(
    _: ReaderDep, session: SessionDep, settings: SettingsDep, label: LabelQuery = None
) -> dict[str, Any]:
    """Every feature with its label's version, pinned flag and update time."""
    rows = labels.list_features(session, label=label or settings.label)
    return {"data": rows, "count": len(rows)}


@router.get(
    "/{name}",
    response_model=ResolvedVersion,
    responses={304: {"description": "Not modified (If-None-Match matched the ETag)"}},
)
async def resolve(
    name: str,
    request: Request,
    _: ReaderDep,
    serving: ServingDep,
    label: LabelQuery = None,
    version: VersionQuery = None,
) -> Response:
    """The resolved version; `ETag` is its content hash, `If-None-Match` answers 304."""
    served = serving.resolve(name, label or request.app.state.settings.label, version)
    headers = {"ETag": served.etag}
    if request.headers.get("if-none-match") == served.etag:
        return Response(status_code=304, headers=headers)
    return Response(served.body, media_type=JSON, headers=headers)


@router.post("/{name}/render", response_model=RenderOut)
async def render(
    name: str, body: RenderIn, request: Request, _: ReaderDep, serving: ServingDep
) -> Response:
    """Render with variables: messages, chain, limits, tokens, cost and budget verdict."""
    served = serving.resolve(name, body.label or request.app.state.settings.label, body.version)
    key = render_key(body.variables)
    hit = served.cached_render(key)
    if hit is None:
        hit = await run_in_threadpool(_render, served, body.variables)
        served.keep_render(key, hit)
    return Response(hit, media_type=JSON, headers={"ETag": served.etag})


def _render(served: Served, variables: dict[str, Any]) -> bytes:
    try:
        prepared = prepare(served.feature, served.catalog, variables)
    except CatalogError as exc:
        raise RenderError(f"{served.feature.name}: {exc}") from None
    return encode(prepared.as_dict(version=served.version))


@router.get("/{name}/versions", response_model=VersionList)
def versions(name: str, _: ReaderDep, session: SessionDep) -> dict[str, Any]:
    """All versions, newest first, with commit info and the labels pointing at each."""
    rows = labels.history(session, name)
    return {"data": rows, "count": len(rows)}


@router.get("/{name}/diff", response_model=DiffOut)
def diff(
    name: str,
    _: ReaderDep,
    session: SessionDep,
    from_version: Annotated[int, Query(alias="from", ge=1)],
    to_version: Annotated[int, Query(alias="to", ge=1)],
) -> dict[str, Any]:
    """Unified diff of prompt, policy and partials between two versions, and the token delta."""
    feature = labels.feature_or_404(session, name)
    old = json.loads(labels.version_or_404(session, feature, from_version).content)
    new = json.loads(labels.version_or_404(session, feature, to_version).content)
    a, b = f"{name}@{from_version}", f"{name}@{to_version}"
    tokens_from, model = _sample_tokens(old)
    tokens_to, model_to = _sample_tokens(new)
    delta = None if tokens_from is None or tokens_to is None else tokens_to - tokens_from
    return {
        "feature": name,
        "from_version": from_version,
        "to_version": to_version,
        "prompt_diff": unified(old["prompt"]["source"], new["prompt"]["source"], a, b),
        "policy_diff": unified(_pretty(old["policy"]), _pretty(new["policy"]), a, b),
        "partials_diff": "".join(
            unified(
                old["partials"].get(path, ""),
                new["partials"].get(path, ""),
                f"{path}@{from_version}",
                f"{path}@{to_version}",
            )
            for path in sorted(set(old["partials"]) | set(new["partials"]))
        ),
        "tokens_from": tokens_from,
        "tokens_to": tokens_to,
        "token_delta": delta,
        "model": model_to or model,
    }


def unified(old: str, new: str, a: str, b: str) -> str:
    """A unified diff of two texts ('' when equal)."""
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True), a, b)
    return "".join(lines)


def _pretty(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _sample_tokens(snapshot: dict[str, Any]) -> tuple[int | None, str | None]:
    feature = Feature.from_snapshot(snapshot)
    if feature.prompt.sample is None:
        return None, feature.policy.models[0].model
    try:
        prepared = prepare(
            feature, Catalog.from_snapshot(snapshot["models"]), feature.prompt.sample
        )
    except (RenderError, CatalogError):
        return None, feature.policy.models[0].model
    return prepared.first.input_tokens, prepared.first.model

"""Reading features: list, resolve (ETag), render, versions, diff."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from registry import labels
from registry.api.deps import ReaderDep, SessionDep, SettingsDep, authorize
from registry.api.schemas import (
    LABEL_PATTERN,
    MAX_VERSION,
    DiffOut,
    FeatureList,
    RenderIn,
    RenderOut,
    ResolvedVersion,
    VersionList,
)
from registry.api.serving import RenderAnswer, Served, Serving, encode
from registry.errors import CatalogError, RenderError
from registry.request import prepare
from registry.rollouts import arms
from registry.store import crud
from registry.usage.metrics import count_budget_rejection

router = APIRouter(prefix="/v1/features", tags=["features"])
LabelQuery = Annotated[
    str | None,
    Query(max_length=200, pattern=LABEL_PATTERN, description="Label (default: production)."),
]
JSON = "application/json"
_LABEL = re.compile(LABEL_PATTERN)


@router.get("", response_model=FeatureList)
def list_features(
    _: ReaderDep, session: SessionDep, settings: SettingsDep, label: LabelQuery = None
) -> FeatureList:
    """Every feature with its label's version, pinned flag and update time."""
    rows = crud.list_features_with_label(session=session, label=label or settings.label)
    return FeatureList(data=rows, count=len(rows))


_RESOLVE_PARAMETERS = [
    {
        "name": "label",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "maxLength": 200},
        "description": "Label (default: production).",
    },
    {
        "name": "version",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1},
        "description": "A version number.",
    },
    {
        "name": "key",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "maxLength": 500},
        "description": "Keeps a caller on one arm of a rollout (a user or session id).",
    },
]
_RENDER_BODY = {
    "required": True,
    "content": {"application/json": {"schema": RenderIn.model_json_schema()}},
}


def _label_version(request: Request) -> tuple[str, int | None]:
    if not request.scope["query_string"]:
        return request.app.state.settings.label, None
    query = request.query_params
    label = query.get("label") or request.app.state.settings.label
    raw = query.get("version")
    if len(query.get("key") or "") > 500:
        raise RequestValidationError([{"loc": ("query", "key"), "msg": "500 characters at most"}])
    if len(label) > 200 or not _LABEL.match(label):
        raise RequestValidationError(
            [{"loc": ("query", "label"), "msg": "letters, digits, '_', '.', '-' (200 at most)"}]
        )
    if raw is None:
        return label, None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_VERSION:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "version"),
                    "msg": f"must be a whole number from 1 to {MAX_VERSION}",
                }
            ]
        )
    return label, int(raw)


def _matches(header: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: `*`, or any listed tag (weak comparison)."""
    if not header:
        return False
    for tag in header.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == etag:
            return True
    return False


async def _served(request: Request, name: str, label: str, version: int | None) -> Served:
    serving: Serving = request.app.state.serving
    hit = serving.cached(name, label, version)
    if hit is None:
        hit = await run_in_threadpool(serving.resolve, name, label, version)
    return hit


# The two hot routes take no FastAPI dependencies: a cached answer is a token lookup, a
# dict lookup and pre-encoded bytes. Their parameters are documented through openapi_extra.
@router.get(
    "/{name}",
    response_model=ResolvedVersion,
    responses={304: {"description": "Not modified (If-None-Match matched the ETag)"}},
    openapi_extra={"parameters": _RESOLVE_PARAMETERS},
)
async def resolve(name: str, request: Request) -> Response:
    """The resolved version; `ETag` is its content hash, `If-None-Match` answers 304."""
    await authorize(request)
    label, version = _label_version(request)
    served = await _served(request, name, label, version)
    split = served.split
    etag = served.etag if split is None else split.etag
    headers = {"ETag": etag}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    if split is None:
        return Response(served.body, media_type=JSON, headers=headers)
    arm = arms.choose(name, request.query_params.get("key"), split.percent)
    return Response(split.bodies[arm], media_type=JSON, headers=headers)


@router.post(
    "/{name}/render", response_model=RenderOut, openapi_extra={"requestBody": _RENDER_BODY}
)
async def render(name: str, request: Request) -> Response:
    """Render with variables: messages, chain, limits, tokens, cost and budget verdict."""
    await authorize(request)
    serving: Serving = request.app.state.serving
    raw = await request.body()
    digest = hashlib.sha256(raw).digest()
    answer = serving.cached_render((name, digest))
    if answer is None:
        seen = serving.generation
        body = _render_body(raw)
        label = body.label or request.app.state.settings.label
        served = await _served(request, name, label, body.version)
        if served.split is None:
            answer = await run_in_threadpool(_render, served, body.variables, None)
            serving.keep_render(seen, (name, digest), answer)
        else:
            # Per arm: without a key the same body may go to either arm.
            split = served.split
            arm = arms.choose(name, body.key, split.percent)
            answer = serving.cached_render((name, digest, arm))
            if answer is None:
                rollout = split.rollout(arm)
                answer = await run_in_threadpool(_render, split.arms[arm], body.variables, rollout)
                serving.keep_render(seen, (name, digest, arm), answer)
    if not answer.allowed:
        count_budget_rejection(name)
    return Response(answer.body, media_type=JSON, headers={"ETag": answer.etag})


def _render_body(raw: bytes) -> RenderIn:
    try:
        return RenderIn.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        errors = [
            {"loc": ("body", *err["loc"]), "msg": err["msg"], "type": err["type"]}
            for err in exc.errors()
        ]
        raise RequestValidationError(errors) from None


def _render(
    served: Served, variables: dict[str, Any], rollout: dict[str, Any] | None
) -> RenderAnswer:
    try:
        prepared = prepare(served.feature, served.catalog, variables)
    except CatalogError as exc:
        raise RenderError(f"{served.feature.name}: {exc}") from None
    answer = prepared.as_dict(version=served.version)
    if rollout is not None:
        answer["rollout"] = rollout
    return RenderAnswer(encode(answer), prepared.verdict.allowed, served.etag)


@router.get("/{name}/versions", response_model=VersionList)
def versions(name: str, _: ReaderDep, session: SessionDep) -> VersionList:
    """All versions, newest first, with commit info and the labels pointing at each."""
    rows = labels.history(session, name)
    return VersionList(data=rows, count=len(rows))


@router.get("/{name}/diff", response_model=DiffOut)
def diff(
    name: str,
    _: ReaderDep,
    session: SessionDep,
    from_version: Annotated[int, Query(alias="from", ge=1, le=MAX_VERSION)],
    to_version: Annotated[int, Query(alias="to", ge=1, le=MAX_VERSION)],
) -> DiffOut:
    """Unified diff of prompt, policy and partials between two versions, and the token delta."""
    feature = labels.feature_or_404(session, name)
    change = labels.version_change(session, feature, from_version, to_version)
    return DiffOut(
        feature=name,
        from_version=from_version,
        to_version=to_version,
        prompt_diff=change.prompt_diff,
        policy_diff=change.policy_diff,
        partials_diff=change.partials_diff,
        tokens_from=change.tokens_from,
        tokens_to=change.tokens_to,
        token_delta=change.token_delta,
        model=change.model,
    )

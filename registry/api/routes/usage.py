"""Usage: posting events (POST /v1/usage), a feature's stats, and Prometheus `/metrics`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from registry.api.deps import ReaderDep, SessionDep, SettingsDep
from registry.api.schemas import ErrorOut
from registry.usage import metrics
from registry.usage.ingest import MAX_BATCH, Ingestor
from registry.usage.stats import feature_stats

router = APIRouter(tags=["usage"])

_EXAMPLE = {
    "id": "5f0c2a9e-3a51-4a8e-9d55-0c7f6f1e2b11",
    "feature": "support.reply",
    "version": 3,
    "model": "gpt-4o",
    "input_tokens": 1289,
    "output_tokens": 214,
    "latency_ms": 1830.5,
    "outcome": "ok",
    "estimated_input_tokens": 1204,
    "cost_usd": 0.00536,
    "at": "2026-11-27T09:30:00Z",
}


class UsageIn(BaseModel):
    """A batch of usage events (at most 1,000)."""

    model_config = ConfigDict(extra="forbid")

    events: list[Any] = Field(
        description=(
            "Each event: `feature`, `version`, `model`, `input_tokens`, `output_tokens`, "
            "`latency_ms`, `outcome` (ok, error, timeout, fallback, degraded, rejected), "
            "`estimated_input_tokens`; optional `id` (client-generated, makes retries "
            "safe), `cost_usd` (default: the version's catalog prices), `at` (ISO 8601, "
            "default: now)."
        ),
        examples=[[_EXAMPLE]],
    )


class RejectedOut(BaseModel):
    """An event that was not stored, and why."""

    index: int
    reason: str


class UsageOut(BaseModel):
    """What happened to a batch: stored, already stored (by id), refused."""

    accepted: int
    duplicates: int
    rejected: list[RejectedOut]


class StatsOut(BaseModel):
    """A feature's usage over a window (whole UTC hours), and the alarms it raises."""

    feature: str
    label: str
    live_version: int | None
    window: str
    since: str
    until: str
    requests: int
    outcomes: dict[str, int]
    error_rate_pct: float | None
    latency_ms: dict[str, float | None]
    tokens: dict[str, int]
    cost_usd: float
    cost_today_usd: float
    drift_pct: float | None
    alarms: list[dict[str, Any]]
    rows: list[dict[str, Any]]


def _ingestor(request: Request) -> Ingestor:
    # One per app (its version cache belongs to that app's database).
    state = request.app.state
    ingestor: Ingestor | None = getattr(state, "usage_ingestor", None)
    if ingestor is None:
        ingestor = state.usage_ingestor = Ingestor(state.engine)
    return ingestor


@router.post(
    "/v1/usage",
    status_code=202,
    response_model=UsageOut,
    responses={413: {"model": ErrorOut, "description": "More than 1,000 events"}},
)
def post_usage(body: UsageIn, request: Request, _: ReaderDep) -> dict[str, Any]:
    """Store usage events; invalid ones are reported by index, the others kept, all at once."""
    if len(body.events) > MAX_BATCH:
        raise HTTPException(
            413, f"a batch holds at most {MAX_BATCH} events, got {len(body.events)}: split it"
        )
    result = _ingestor(request).ingest(body.events)
    metrics.record_usage(result.stored)
    metrics.record_batch(result.accepted, result.duplicates, len(result.rejected))
    return result.as_dict()


@router.get("/v1/features/{name}/stats", response_model=StatsOut)
def stats(
    name: str,
    _: ReaderDep,
    session: SessionDep,
    settings: SettingsDep,
    window: Annotated[
        str, Query(max_length=16, description="Whole hours back from now: 90m, 24h, 7d.")
    ] = "24h",
    label: Annotated[
        str | None, Query(max_length=200, description="Label whose version sets the alarms.")
    ] = None,
) -> dict[str, Any]:
    """Requests, outcomes, error rate, p50/p95 latency, tokens, cost, drift and alarms."""
    return feature_stats(session, name, label=label or settings.label, window=window)


@router.get("/metrics", response_class=Response, tags=["health"])
def prometheus(request: Request) -> Response:
    """Prometheus text: usage counters, latency, tokens, cost, budget rejections, versions."""
    body = metrics.exposition(request.app.state.engine, request.app.state.settings.label)
    return Response(body, media_type=metrics.CONTENT_TYPE)

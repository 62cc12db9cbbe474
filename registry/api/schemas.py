"""Request and response bodies of the HTTP API (SPEC §4), for validation and OpenAPI."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_VERSION = 2**31 - 1
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
NO_NUL = r"^[^\x00]*$"


class Body(BaseModel):
    """Request bodies: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    """Every error answer."""

    detail: str


class FeatureRow(BaseModel):
    """One feature and where a label points it."""

    name: str
    label: str
    version: int | None
    pinned: bool
    updated_at: str | None
    retired: bool


class FeatureList(BaseModel):
    """All features."""

    data: list[FeatureRow]
    count: int


class CommitOut(BaseModel):
    """The git commit that produced a version."""

    sha: str
    author: str
    email: str
    message: str
    committed_at: str | None


class PromptOut(BaseModel):
    """A version's prompt file."""

    path: str
    source: str
    inputs: dict[str, Any]


class ResolvedVersion(BaseModel):
    """A resolved version of a feature (the `ETag` header is its content hash)."""

    feature: str
    version: int
    label: str | None
    content_hash: str
    commit: CommitOut
    pinned: bool
    retired: bool
    prompt: PromptOut
    partials: dict[str, str]
    policy: dict[str, Any]
    models: dict[str, Any]
    created_at: str | None
    snapshot: dict[str, Any] = Field(
        description="The stored canonical snapshot (sha256 of its canonical JSON = content_hash)"
    )


class RenderIn(Body):
    """Variables to render with, and which version."""

    variables: dict[str, Any] = Field(default_factory=dict)
    label: str | None = Field(default=None, max_length=200, pattern=LABEL_PATTERN)
    version: int | None = Field(default=None, ge=1, le=MAX_VERSION)


class TokensOut(BaseModel):
    """Token estimate on the first model, and per model of the chain."""

    input: int
    max_output: int
    total: int
    model: str
    per_model: list[dict[str, Any]]


class BudgetOut(BaseModel):
    """The budget verdict; over budget is a 200 with allowed=false."""

    allowed: bool
    reason: str
    max_request_tokens: int
    max_request_usd: float | None


class RenderOut(BaseModel):
    """Everything needed to call the model chain (or to refuse to)."""

    feature: str
    version: int | None
    content_hash: str
    messages: list[dict[str, str]]
    models: list[dict[str, Any]]
    params: dict[str, Any]
    max_output_tokens: int
    stream: bool
    deadline_s: float | None
    tokens: TokensOut
    cost_usd_estimate: float | None
    budget: BudgetOut
    degraded_message: str


class VersionRow(BaseModel):
    """One version in a feature's history."""

    version: int
    content_hash: str
    commit: CommitOut
    created_at: str | None
    labels: list[str]


class VersionList(BaseModel):
    """A feature's versions, newest first."""

    data: list[VersionRow]
    count: int


class DiffOut(BaseModel):
    """What changed between two versions."""

    feature: str
    from_version: int
    to_version: int
    prompt_diff: str
    policy_diff: str
    partials_diff: str
    tokens_from: int | None
    tokens_to: int | None
    token_delta: int | None
    model: str | None


class RollbackIn(Body):
    """Roll back to the previous target, or to `to_version`."""

    label: str | None = Field(default=None, max_length=200, pattern=LABEL_PATTERN)
    to_version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    reason: str | None = Field(default=None, max_length=2000, pattern=NO_NUL)


class PromoteIn(Body):
    """Promote to the newest version, or to `version`."""

    label: str | None = Field(default=None, max_length=200, pattern=LABEL_PATTERN)
    version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    reason: str | None = Field(default=None, max_length=2000, pattern=NO_NUL)


class LabelMoveOut(BaseModel):
    """Where a label moved."""

    feature: str
    label: str
    from_version: int | None
    to_version: int
    pinned: bool


class AuditRow(BaseModel):
    """One label move."""

    feature: str
    label: str
    action: str
    from_version: int | None
    to_version: int | None
    actor: str
    reason: str | None
    at: str | None


class AuditList(BaseModel):
    """Label moves, newest first."""

    data: list[AuditRow]
    count: int


class SyncOut(BaseModel):
    """What a sync did."""

    repo: str
    ref: str
    label: str
    from_commit: str | None
    to_commit: str
    commits: int
    versions_created: int
    labels_moved: int
    retired: list[str]
    unretired: list[str]
    pinned_skipped: list[str]
    rewritten_history: bool
    errors: list[dict[str, Any]]
    ok: bool


class HookOut(BaseModel):
    """The webhook's answer: accepted (sync started) or ignored."""

    accepted: bool
    detail: str


class HealthOut(BaseModel):
    """Liveness and database readiness."""

    status: str
    database: str
    generation: int | None

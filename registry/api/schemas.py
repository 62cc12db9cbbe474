"""Request and response bodies of the HTTP API (SPEC §4), for validation and OpenAPI.

Rows come from the store's public models (`FeatureSummary`, `VersionPublic`,
`AuditEntryPublic`) and label moves from `registry.labels.LabelMove`; this module adds the
request bodies, the list envelopes and the composite answers. The CLI's database mode
dumps the same models, so both modes print the same JSON.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from registry.definitions.content import VersionContent
from registry.labels import LabelMove
from registry.store.models import (
    MAX_VERSION,
    AuditEntryPublic,
    CommitInfo,
    Feature,
    FeatureSummary,
    Label,
    RolloutPublic,
    Timestamp,
    Version,
    VersionPublic,
)

__all__ = ["MAX_VERSION", "LabelMove"]

LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
NO_NUL = r"^[^\x00]*$"
# A request body's label (else the server's) and reason for a change.
LabelIn = Annotated[str | None, Field(max_length=200, pattern=LABEL_PATTERN)]
ReasonIn = Annotated[str | None, Field(max_length=2000, pattern=NO_NUL)]


class Body(BaseModel):
    """Request bodies: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    """Every error answer."""

    detail: str


class FeatureList(BaseModel):
    """All features."""

    data: list[FeatureSummary]
    count: int


class PromptOut(BaseModel):
    """A version's prompt file."""

    path: str
    source: str
    inputs: dict[str, Any]


class RolloutArm(BaseModel):
    """While the label rolls out a new version: both versions, the split, the arm served."""

    candidate: int
    stable: int
    percent: int
    arm: str = Field(description="candidate or stable")


class ResolvedVersion(BaseModel):
    """A resolved version of a feature (the `ETag` header is its content hash)."""

    feature: str
    version: int
    label: str | None
    content_hash: str
    commit: CommitInfo
    pinned: bool
    retired: bool
    prompt: PromptOut
    partials: dict[str, str]
    policy: dict[str, Any]
    models: dict[str, Any]
    created_at: Timestamp | None
    snapshot: dict[str, Any] = Field(
        description="The stored canonical snapshot (sha256 of its canonical JSON = content_hash)"
    )
    rollout: RolloutArm | None = Field(default=None, exclude_if=lambda v: v is None)

    @classmethod
    def of(
        cls,
        feature: Feature,
        version: Version,
        label: str | None,
        label_row: Label | None,
        content: VersionContent | None = None,
    ) -> ResolvedVersion:
        """The answer for `version` of `feature`, resolved through `label` (`content`: the
        version's content, when the caller has parsed it already)."""
        if content is None:
            content = VersionContent.from_json(version.content)
        snapshot = content.as_dict()
        return cls(
            feature=feature.name,
            version=version.version,
            label=label,
            content_hash=version.content_hash,
            commit=version.commit,
            pinned=bool(label_row and label_row.pinned and label_row.version_id == version.id),
            retired=feature.retired,
            prompt=PromptOut(
                path=content.prompt.path, source=content.prompt.source, inputs=content.prompt.inputs
            ),
            partials=content.partials,
            policy=content.policy,
            models=snapshot["models"],
            created_at=version.created_at,
            # clients rebuild the feature from it, checking its hash
            snapshot=snapshot,
        )


class RenderIn(Body):
    """Variables to render with, and which version."""

    variables: dict[str, Any] = Field(default_factory=dict)
    label: LabelIn = None
    version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    key: str | None = Field(
        default=None,
        max_length=500,
        description="Keeps a caller on one arm of a rollout (a user or session id)",
    )


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
    rollout: RolloutArm | None = Field(default=None, exclude_if=lambda v: v is None)


class VersionList(BaseModel):
    """A feature's versions, newest first."""

    data: list[VersionPublic]
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

    label: LabelIn = None
    to_version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    reason: ReasonIn = None


class PromoteIn(Body):
    """Promote to the newest version, or to `version`."""

    label: LabelIn = None
    version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    reason: ReasonIn = None


class RolloutList(BaseModel):
    """Each feature's latest rollout."""

    data: list[RolloutPublic]
    count: int


class RolloutStartIn(Body):
    """Roll `to_version` out; `steps` and `interval` override the candidate policy's plan."""

    to_version: int = Field(ge=1, le=MAX_VERSION)
    label: LabelIn = None
    steps: list[int] | None = None
    interval: str | None = Field(default=None, max_length=20)
    reason: ReasonIn = None


class RolloutActionIn(Body):
    """Which label's rollout, and why."""

    label: LabelIn = None
    reason: ReasonIn = None


class AuditList(BaseModel):
    """Label moves, newest first."""

    data: list[AuditEntryPublic]
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
    rollouts_started: list[str]
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

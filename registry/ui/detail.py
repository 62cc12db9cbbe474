"""One feature's page: its versions, the live one's sample and policy, usage, rollout.

Everything is read through the modules the API and CLI use: `crud.versions_of` for the
timeline, the serving cache for the version's definition, `request.prepare` for the
rendered sample (tokens and cost as `render` gives them), `feature_stats` for the totals
and alarms, the minute rollups for both arms of a rollout (the window its guards judge).
A version never changes, so its rendered sample and policy text are kept by content hash.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from registry import labels
from registry.api.serving import Served, Serving
from registry.errors import CatalogError, NotFound, RenderError
from registry.render import Message
from registry.rollouts.controller import arm_stats
from registry.store import crud
from registry.store.models import (
    ACTIVE_STATES,
    AuditEntryPublic,
    RolloutPublic,
    VersionPublic,
    utcnow,
)
from registry.ui.series import Point, hourly
from registry.usage.rollup import minute_of
from registry.usage.stats import feature_stats

KEEP = 512  # rendered samples and policy texts kept, by content hash


@dataclass(frozen=True)
class Sample:
    """The version's `sample` rendered: messages, tokens and cost on the first model."""

    messages: list[Message] = field(default_factory=list)
    model: str | None = None
    input_tokens: int | None = None
    cost_usd: float | None = None
    allowed: bool | None = None
    reason: str = ""
    problem: str | None = None  # why there is nothing to show


@dataclass
class FeaturePage:
    """What the feature page shows."""

    name: str
    label: str
    retired: bool
    current: int | None  # the version the label points at
    pinned: bool
    updated_at: datetime | None
    shown: Served  # the version whose sample and policy are shown
    versions: list[VersionPublic]
    sample: Sample
    policy_text: str
    stats: dict[str, Any]
    points: list[Point]
    rollout: RolloutPublic | None
    arms: dict[str, dict[str, Any]] | None
    audit: list[AuditEntryPublic]

    @property
    def description(self) -> str | None:
        """The policy's description, else the prompt's."""
        policy = self.shown.feature.policy_data
        return str(policy.get("description") or self.shown.feature.prompt.description or "")

    @property
    def owner(self) -> str | None:
        """Who owns the feature, as its policy says."""
        owner = self.shown.feature.policy_data.get("owner")
        return None if owner is None else str(owner)

    @property
    def rollout_active(self) -> bool:
        """Whether a rollout is running or paused on the label."""
        return self.rollout is not None and self.rollout.state in ACTIVE_STATES


class Kept:
    """A small map from content hash to something derived from that content."""

    def __init__(self) -> None:
        self._items: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        """The kept value, or None."""
        return self._items.get(key)

    def put(self, key: str, value: Any) -> None:
        """Keep `value`, forgetting the oldest when full."""
        with self._lock:
            if len(self._items) >= KEEP:
                self._items.pop(next(iter(self._items)))
            self._items[key] = value


_samples = Kept()
_policies = Kept()


def sample_of(served: Served) -> Sample:
    """The served version's sample, rendered and counted (kept by content hash)."""
    kept: Sample | None = _samples.get(served.content_hash)
    if kept is not None:
        return kept
    from registry.request import prepare

    feature = served.feature
    if feature.prompt.sample is None:
        sample = Sample(problem="This prompt declares no sample.")
    else:
        try:
            prepared = prepare(feature, served.catalog, feature.prompt.sample)
        except (RenderError, CatalogError) as exc:
            sample = Sample(problem=f"The sample does not render: {exc}")
        else:
            first = prepared.first
            sample = Sample(
                messages=list(prepared.messages),
                model=first.model,
                input_tokens=first.input_tokens,
                cost_usd=first.cost_usd,
                allowed=prepared.verdict.allowed,
                reason=prepared.verdict.reason,
            )
    _samples.put(served.content_hash, sample)
    return sample


def policy_text(served: Served) -> str:
    """The effective policy (defaults merged) as YAML (kept by content hash)."""
    kept: str | None = _policies.get(served.content_hash)
    if kept is not None:
        return kept
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    out = io.StringIO()
    yaml.dump(served.feature.policy_data, out)
    text = out.getvalue()
    _policies.put(served.content_hash, text)
    return text


def arms_of(session: Session, rollout: RolloutPublic, feature_id: int) -> dict[str, dict[str, Any]]:
    """Both arms' figures over the current step's window, as the guards will judge them."""
    since = minute_of(rollout.step_started_at)
    until = minute_of(utcnow()) + timedelta(minutes=1)  # the current minute, still filling
    out = {}
    for arm, number in (("stable", rollout.stable), ("candidate", rollout.candidate)):
        stats = arm_stats(session, feature_id=feature_id, version=number, since=since, until=until)
        out[arm] = {"version": number, **stats.as_dict()}
    return out


def load(session: Session, serving: Serving, name: str, *, label: str, window: str) -> FeaturePage:
    """Everything the feature page shows, for `label` over `window`."""
    feature = labels.feature_or_404(session, name)
    assert feature.id is not None
    versions = crud.versions_of(session=session, feature=feature)
    if not versions:
        raise NotFound(f"feature {name!r} has no versions yet")
    resolved = crud.resolve_label(session=session, feature=feature, name=label)
    label_row, current = resolved if resolved is not None else (None, None)
    shown_number = current.version if current is not None else versions[0].version
    shown = serving.resolve(name, label, shown_number)
    found = crud.latest_rollout(session=session, feature=feature, label=label)
    rollout = crud.rollout_public(session=session, rollout=found) if found is not None else None
    return FeaturePage(
        name=name,
        label=label,
        retired=feature.retired,
        current=current.version if current is not None else None,
        pinned=bool(label_row and label_row.pinned),
        updated_at=label_row.updated_at if label_row is not None else None,
        shown=shown,
        versions=versions,
        sample=sample_of(shown),
        policy_text=policy_text(shown),
        stats=feature_stats(session, name, label=label, window=window),
        points=hourly(session, feature.id, window=window),
        rollout=rollout,
        arms=arms_of(session, rollout, feature.id)
        if rollout is not None and rollout.state in ACTIVE_STATES
        else None,
        audit=crud.list_audit(session=session, feature=feature, label=label, limit=20),
    )

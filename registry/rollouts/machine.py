"""The rollout state machine: every transition, in the caller's transaction.

    running ──step──▶ running ──last step──▶ completed   (labels.move promotes the candidate)
       │  ▲
    pause resume
       ▼  │
     paused
    running/paused ──guard, person, rollback──▶ aborted   (label stays on stable, pinned)
    running/paused ──newer sync, revert───────▶ superseded

While a rollout is active the label keeps pointing at the stable version; resolving it
serves the candidate to `percent` % of requests. Every transition bumps the change marker,
so every replica serves the new split within its poll interval, and is recorded in the
audit log (a step advance only in the rollout's own decision history). A transition is
one transaction with the decision that caused it: a controller killed half-way leaves the
rollout as it was, and the next one decides again.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session

from registry import labels
from registry.definitions.content import VersionContent
from registry.definitions.policy import RolloutPlan
from registry.definitions.prompt import describe_error
from registry.errors import BadRequest, Conflict, NotFound
from registry.rollouts.guards import MAX_WAITS
from registry.store import crud
from registry.store.models import Feature, Rollout, Version, utcnow


def start(
    session: Session,
    feature: Feature,
    label: str,
    *,
    stable: Version,
    candidate: Version,
    plan: RolloutPlan,
    actor: str,
    reason: str | None = None,
) -> Rollout:
    """Start rolling `candidate` out on `label` (replacing an active rollout)."""
    if candidate.id == stable.id:
        raise Conflict(f"{feature.name} {label} is already at version {stable.version}")
    at = utcnow()
    current = crud.active_rollout(session=session, feature=feature, label=label, for_update=True)
    if current is not None:
        _end(session, current, "superseded", f"superseded by a rollout of v{candidate.version}")
    rollout = crud.save_rollout(
        session=session,
        rollout=Rollout(
            feature_id=feature.id or 0,
            label=label,
            stable_version_id=stable.id or 0,
            candidate_version_id=candidate.id or 0,
            steps=json.dumps(plan.steps),
            guards=json.dumps(plan.guards.model_dump()),
            interval_s=plan.interval_s,
            min_requests=plan.min_requests,
            percent=plan.steps[0],
            actor=actor,
            started_at=at,
            step_started_at=at,
        ),
    )
    _audit(session, feature, label, "rollout_start", stable, candidate, actor, reason, at)
    return rollout


def pause(session: Session, rollout: Rollout, *, actor: str, reason: str | None = None) -> None:
    """Hold the rollout at its current split; no step is decided while paused."""
    if rollout.state != "running":
        raise Conflict(f"the rollout is {rollout.state}, not running: nothing to pause")
    rollout.state, rollout.reason = "paused", reason
    _record(session, rollout, "rollout_pause", actor, reason, {"decision": "pause"})


def resume(session: Session, rollout: Rollout, *, actor: str, reason: str | None = None) -> None:
    """Continue a paused rollout; its current step starts a fresh interval."""
    if rollout.state != "paused":
        raise Conflict(f"the rollout is {rollout.state}, not paused: nothing to resume")
    rollout.state, rollout.reason, rollout.waited = "running", None, 0
    rollout.step_started_at = utcnow()
    _record(session, rollout, "rollout_resume", actor, reason, {"decision": "resume"})


def advance(session: Session, rollout: Rollout, *, decision: dict[str, Any], actor: str) -> None:
    """The guards held: go to the next step, or complete after the last one."""
    steps: list[int] = json.loads(rollout.steps)
    if rollout.step + 1 >= len(steps):
        complete(
            session, rollout, actor=actor, reason="every step passed its guards", decision=decision
        )
        return
    at = utcnow()
    rollout.step += 1
    rollout.percent, rollout.step_started_at, rollout.waited = steps[rollout.step], at, 0
    crud.append_decision(rollout, {**decision, "decision": "step", "percent": rollout.percent}, at)
    crud.save_rollout(session=session, rollout=rollout)
    crud.bump_generation(session=session)


def wait(session: Session, rollout: Rollout, *, decision: dict[str, Any], actor: str) -> None:
    """An arm lacks its minimum requests: wait another interval, or abort after MAX_WAITS."""
    if rollout.waited >= MAX_WAITS:
        why = decision.get("reason", "too few requests")
        reason = f"min_requests: {why}, still after waiting {MAX_WAITS} more intervals"
        abort(
            session,
            rollout,
            actor=actor,
            reason=reason,
            decision={**decision, "guard": "min_requests"},
        )
        return
    at = utcnow()
    rollout.waited += 1  # the window keeps growing from the step's start: data accumulates
    crud.append_decision(rollout, {**decision, "decision": "wait"}, at)
    crud.save_rollout(session=session, rollout=rollout)


def abort(
    session: Session,
    rollout: Rollout,
    *,
    actor: str,
    reason: str,
    decision: dict[str, Any] | None = None,
) -> None:
    """Take the candidate back: the label stays on stable, pinned; audited with the reason."""
    feature = session.get_one(Feature, rollout.feature_id)
    stable = session.get_one(Version, rollout.stable_version_id)
    candidate = session.get_one(Version, rollout.candidate_version_id)
    _end(session, rollout, "aborted", reason, decision)
    moved = labels.move(
        session,
        feature,
        rollout.label,
        stable,
        pinned=True,
        action="rollout_abort",
        actor=actor,
        reason=reason,
    )
    if moved is None:  # already on stable and pinned: the abort is still on record
        _audit(session, feature, rollout.label, "rollout_abort", candidate, stable, actor, reason)


def complete(
    session: Session,
    rollout: Rollout,
    *,
    actor: str,
    reason: str | None = None,
    decision: dict[str, Any] | None = None,
) -> None:
    """The candidate becomes the label's version (a `promote` from stable to candidate)."""
    feature = session.get_one(Feature, rollout.feature_id)
    candidate = session.get_one(Version, rollout.candidate_version_id)
    rollout.percent = 100
    _end(session, rollout, "completed", reason, decision)
    labels.move(
        session,
        feature,
        rollout.label,
        candidate,
        pinned=False,
        action="promote",
        actor=actor,
        reason=f"rollout complete: {reason}" if reason else "rollout complete",
    )


def supersede(session: Session, rollout: Rollout, *, reason: str) -> None:
    """End a rollout whose candidate is no longer what its label should get."""
    _end(session, rollout, "superseded", reason)


def find(session: Session, name: str, label: str, *, active: bool = True) -> Rollout:
    """The feature's active rollout on `label` (or its latest, finished or not)."""
    feature = labels.feature_or_404(session, name)
    found = (
        crud.active_rollout(session=session, feature=feature, label=label, for_update=True)
        if active
        else crud.latest_rollout(session=session, feature=feature, label=label)
    )
    if found is None:
        which = "has no running or paused rollout" if active else "never had a rollout"
        raise NotFound(f"feature {name!r} {which} on label {label!r}")
    return found


# -- helpers -----------------------------------------------------------------------------------


def _end(
    session: Session,
    rollout: Rollout,
    state: str,
    reason: str | None,
    decision: dict[str, Any] | None = None,
) -> None:
    at = utcnow()
    rollout.state, rollout.reason = state, reason
    crud.append_decision(rollout, {**(decision or {}), "decision": state, "reason": reason}, at)
    crud.save_rollout(session=session, rollout=rollout)
    crud.bump_generation(session=session)


def _record(
    session: Session,
    rollout: Rollout,
    action: str,
    actor: str,
    reason: str | None,
    decision: dict[str, Any],
) -> None:
    at = utcnow()
    crud.append_decision(rollout, {**decision, "actor": actor, "reason": reason}, at)
    crud.save_rollout(session=session, rollout=rollout)
    feature = session.get_one(Feature, rollout.feature_id)
    stable = session.get_one(Version, rollout.stable_version_id)
    candidate = session.get_one(Version, rollout.candidate_version_id)
    _audit(session, feature, rollout.label, action, stable, candidate, actor, reason, at)


def _audit(
    session: Session,
    feature: Feature,
    label: str,
    action: str,
    before: Version,
    after: Version,
    actor: str,
    reason: str | None,
    at: datetime | None = None,
) -> None:
    crud.add_audit(
        session=session,
        feature=feature,
        label=label,
        action=action,
        from_version=before.version,
        to_version=after.version,
        actor=actor,
        reason=reason,
        at=at or utcnow(),
    )
    crud.bump_generation(session=session)


# -- what people ask for, by name (the API and the CLI) -------------------------------------


def start_by_name(
    session: Session,
    name: str,
    *,
    label: str,
    to_version: int,
    steps: list[int] | None = None,
    interval: str | None = None,
    actor: str,
    reason: str | None = None,
) -> Rollout:
    """Roll `to_version` out on `label`, with the candidate's plan (or the defaults) and
    `steps`/`interval` over it."""
    feature = labels.feature_or_404(session, name)
    current = crud.get_label(session=session, feature=feature, name=label, for_update=True)
    if current is None:
        raise NotFound(f"feature {name!r} has no version labelled {label!r} to roll out from")
    stable = crud.version_by_id(session=session, version_id=current.version_id)
    candidate = labels.version_or_404(session, feature, to_version)
    raw = dict(VersionContent.from_json(candidate.content).policy.get("rollout") or {})
    raw.update({k: v for k, v in (("steps", steps), ("interval", interval)) if v is not None})
    try:
        plan = RolloutPlan.model_validate(raw)
    except ValidationError as exc:
        raise BadRequest("; ".join(describe_error(err) for err in exc.errors())) from None
    return start(
        session,
        feature,
        label,
        stable=stable,
        candidate=candidate,
        plan=plan,
        actor=actor,
        reason=reason,
    )


ACTIONS = ("pause", "resume", "abort", "complete")


def act(
    session: Session, name: str, action: str, *, label: str, actor: str, reason: str | None = None
) -> Rollout:
    """Pause, resume, abort or complete the feature's active rollout on `label`."""
    rollout = find(session, name, label)
    if action == "pause":
        pause(session, rollout, actor=actor, reason=reason)
    elif action == "resume":
        resume(session, rollout, actor=actor, reason=reason)
    elif action == "abort":
        why = f"aborted by {actor}" + (f": {reason}" if reason else "")
        abort(session, rollout, actor=actor, reason=why)
    elif action == "complete":
        why = f"completed by {actor}" + (f": {reason}" if reason else "")
        complete(session, rollout, actor=actor, reason=why)
    else:
        raise BadRequest(f"unknown rollout action {action!r}: use {', '.join(ACTIONS)}")
    return rollout

"""What an admin can do from the dashboard: roll back, promote, pause, resume, abort or
complete a rollout. Each is two steps: a confirmation page (GET) that says what will happen,
and its form (POST), which `auth.posted_by_admin` checks (origin, session, CSRF token,
admin role) before anything moves. The moves are the ones the API and CLI make:
`labels.rollback`, `labels.promote` and `rollouts.machine.act`, audited with the token's
name, published to every replica through the change marker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session

from registry import labels
from registry.api.deps import SessionDep, published
from registry.api.schemas import MAX_VERSION
from registry.errors import NotFound
from registry.rollouts import machine
from registry.store import crud
from registry.store.models import Feature
from registry.ui.auth import AdminPostedDep, AdminVisitorDep, Posted
from registry.ui.pages import LabelQuery, label_of
from registry.ui.views import PREFIX, PageRoute, page, see_other

log = logging.getLogger("promptreg.ui")
router = APIRouter(prefix=PREFIX, route_class=PageRoute, include_in_schema=False)
MAX_REASON = 2000
REASON_REQUIRED = {"rollback", "abort"}
ACTIONS = ("rollback", "promote", *machine.ACTIONS)


def _current(session: Session, feature: Feature, label: str) -> int | None:
    resolved = crud.resolve_label(session=session, feature=feature, name=label)
    return resolved[1].version if resolved is not None else None


def _question(
    session: Session, name: str, action: str, label: str, version: int | None
) -> dict[str, Any]:
    """What the confirmation page asks and the effects it lists."""
    feature = labels.feature_or_404(session, name)
    current = _current(session, feature, label)
    now = f"v{current}" if current else "no version"
    active = crud.active_rollout(session=session, feature=feature, label=label)
    if action == "rollback":
        if version is None:
            raise HTTPException(422, "choose the version to roll back to")
        labels.version_or_404(session, feature, version)
        effects = [
            f"{label} moves from {now} to v{version} and is pinned: later syncs record new "
            "versions but do not move it until someone promotes.",
        ]
        if active is not None:
            effects.append("The rollout running on this label is aborted.")
        return {
            "question": f"Roll {name} back to v{version}?",
            "effects": effects,
            "button": f"Roll back to v{version}",
            "danger": True,
        }
    if action == "promote":
        if version is None:
            latest = crud.latest_version(session=session, feature=feature)
            if latest is None:
                raise NotFound(f"feature {name!r} has no versions yet")
            target = latest.version
        else:
            target = labels.version_or_404(session, feature, version).version
        effects = [f"{label} moves from {now} to v{target} and is unpinned: syncs move it again."]
        if active is not None:
            effects.append(
                "The rollout running on this label completes (or ends, if it rolls out "
                "another version)."
            )
        return {
            "question": f"Promote {name} to v{target}?",
            "effects": effects,
            "button": f"Promote v{target}",
            "danger": False,
            "version": target,
        }
    if active is None:
        raise HTTPException(409, f"{name} has no running or paused rollout on {label}")
    rollout = crud.rollout_public(session=session, rollout=active)
    stable, candidate = f"v{rollout.stable}", f"v{rollout.candidate}"
    text = {
        "pause": [f"The split stays at {rollout.percent}% on {candidate}; no step is decided."],
        "resume": ["The current step starts a fresh interval; the guards decide again."],
        "abort": [
            f"{label} stays on {stable} and is pinned; no request gets {candidate} any more."
        ],
        "complete": [f"{candidate} becomes {label}'s version, unpinned, for every request."],
    }[action]
    return {
        "question": f"{action.capitalize()} the rollout of {name} {candidate}?",
        "effects": text,
        "button": f"{action.capitalize()} the rollout",
        "danger": action == "abort",
    }


@router.get("/features/{name}/confirm", response_class=HTMLResponse)
def confirm(
    name: str,
    request: Request,
    visitor: AdminVisitorDep,
    session: SessionDep,
    action: Annotated[str, Query(max_length=20)],
    label: LabelQuery = None,
    version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None,
) -> HTMLResponse:
    """The confirmation of an action: what it will do, a reason, one button."""
    if action not in ACTIONS:
        raise HTTPException(422, f"unknown action {action!r}")
    label = label_of(request, label)
    asked = _question(session, name, action, label, version)
    path = "rollout/" + action if action in machine.ACTIONS else action
    context = {
        "title": asked["question"],
        "nav": "features",
        "name": name,
        "label": label,
        "version": asked.get("version", version),
        "action_url": f"{PREFIX}/features/{name}/{path}",
        "reason_required": action in REASON_REQUIRED,
        **asked,
    }
    return page(request, "confirm.html", context)


def _fields(request: Request, form: Posted, action: str) -> tuple[str, int | None, str | None]:
    """The label, version and reason a form carries, checked."""
    label = label_of(request, form.fields.get("label") or None)
    raw = form.fields.get("version", "").strip()
    version = None
    if raw:
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_VERSION:
            raise HTTPException(422, "a version is a whole number from 1")
        version = int(raw)
    reason = form.fields.get("reason", "").strip()
    if len(reason) > MAX_REASON or "\x00" in reason:
        raise HTTPException(422, f"a reason is text of at most {MAX_REASON} characters")
    if action in REASON_REQUIRED and not reason:
        raise HTTPException(422, f"say why: a {action} from the dashboard needs a reason")
    return label, version, reason or None


def _done(name: str, label: str, action: str) -> RedirectResponse:
    return see_other(f"{PREFIX}/features/{name}?{urlencode({'label': label, 'done': action})}")


# A label move: its function, the keyword that names the chosen version, and its log line.
MOVES: dict[str, tuple[Callable[..., labels.LabelMove], str, str]] = {
    "rollback": (labels.rollback, "to_version", "dashboard: %s rolled %s %s back to v%s"),
    "promote": (labels.promote, "version", "dashboard: %s promoted %s %s to v%s"),
}


def _move(
    name: str, action: str, request: Request, form: Posted, session: Session
) -> RedirectResponse:
    label, version, reason = _fields(request, form, action)
    mover, keyword, said = MOVES[action]
    actor = form.visitor.name
    move = mover(session, name, label=label, actor=actor, reason=reason, **{keyword: version})
    published(request, session)
    log.info(said, actor, name, label, move.to_version)
    return _done(name, label, action)


@router.post("/features/{name}/rollback")
def rollback(
    name: str, request: Request, form: AdminPostedDep, session: SessionDep
) -> RedirectResponse:
    """Move the label back to the chosen version and pin it."""
    return _move(name, "rollback", request, form, session)


@router.post("/features/{name}/promote")
def promote(
    name: str, request: Request, form: AdminPostedDep, session: SessionDep
) -> RedirectResponse:
    """Move the label to the chosen (default: newest) version and unpin it."""
    return _move(name, "promote", request, form, session)


@router.post("/features/{name}/rollout/{action}")
def rollout(
    name: str, action: str, request: Request, form: AdminPostedDep, session: SessionDep
) -> RedirectResponse:
    """Pause, resume, abort or complete the label's rollout."""
    if action not in machine.ACTIONS:
        raise HTTPException(404, f"no rollout action {action!r}")
    label, _, reason = _fields(request, form, action)
    machine.act(session, name, action, label=label, actor=form.visitor.name, reason=reason)
    published(request, session)
    log.info("dashboard: %s did rollout %s on %s %s", form.visitor.name, action, name, label)
    return _done(name, label, action)

"""Guarded rollouts: read them, and start, pause, resume, abort or complete one (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from registry.api.deps import LabelChangeDep, ReaderDep, SessionDep, SettingsDep
from registry.api.schemas import LABEL_PATTERN, RolloutActionIn, RolloutList, RolloutStartIn
from registry.rollouts import machine
from registry.store import crud
from registry.store.models import RolloutPublic

router = APIRouter(prefix="/v1", tags=["rollouts"])
LabelQuery = Annotated[str | None, Query(max_length=200, pattern=LABEL_PATTERN)]


@router.get("/rollouts", response_model=RolloutList)
def rollouts(
    _: ReaderDep, session: SessionDep, settings: SettingsDep, label: LabelQuery = None
) -> RolloutList:
    """Each feature's latest rollout on the label (running, paused or finished)."""
    rows = [
        crud.rollout_public(session=session, rollout=row)
        for row in crud.latest_rollouts(session=session, label=label or settings.label)
    ]
    return RolloutList(data=rows, count=len(rows))


@router.get("/features/{name}/rollout", response_model=RolloutPublic)
def rollout(
    name: str,
    _: ReaderDep,
    session: SessionDep,
    settings: SettingsDep,
    label: LabelQuery = None,
) -> RolloutPublic:
    """The feature's latest rollout on the label, finished or not (404 when it never had one)."""
    # The same lookup as the CLI's database mode: both say the same when there is none.
    found = machine.find(session, name, label or settings.label, active=False)
    return crud.rollout_public(session=session, rollout=found)


@router.post("/features/{name}/rollout/start", response_model=RolloutPublic)
def start(name: str, body: RolloutStartIn, change: LabelChangeDep) -> RolloutPublic:
    """Roll a version out on the label, a slice at a time (replaces an active rollout)."""
    started = change.apply(
        machine.start_by_name,
        name,
        body,
        to_version=body.to_version,
        steps=body.steps,
        interval=body.interval,
    )
    return change.published(crud.rollout_public(session=change.session, rollout=started))


def _action(action: str) -> None:
    def act(name: str, body: RolloutActionIn, change: LabelChangeDep) -> RolloutPublic:
        changed = change.apply(machine.act, name, body, action)
        return change.published(crud.rollout_public(session=change.session, rollout=changed))

    act.__doc__ = {
        "pause": "Hold the rollout at its current split.",
        "resume": "Continue a paused rollout.",
        "abort": "Take the candidate back: the label stays on stable, pinned.",
        "complete": "Promote the candidate to the label now.",
    }[action]
    act.__name__ = f"rollout_{action}"
    router.post(f"/features/{{name}}/rollout/{action}", response_model=RolloutPublic)(act)


for _name in machine.ACTIONS:
    _action(_name)

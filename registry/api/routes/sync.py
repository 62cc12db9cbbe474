"""Syncing the configured repository: on demand (admin) and from a git push webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from registry.api.deps import AdminDep, SettingsDep
from registry.api.schemas import HookOut, SyncOut
from registry.config import Settings
from registry.definitions.content import Layout
from registry.gitrepo import open_repo, resolve_ref
from registry.sync import sync_ref

router = APIRouter(prefix="/v1", tags=["sync"])
log = logging.getLogger("promptreg.api")


def run_sync(request: Request, settings: Settings, actor: str) -> dict[str, Any]:
    """Sync the configured repo/ref/label."""
    summary = sync_ref(
        request.app.state.engine,
        repo=settings.repo,
        ref=settings.ref,
        label=settings.label,
        layout=Layout(settings.prompts_dir, settings.policies_dir),
        cache_dir=settings.cache_dir,
        actor=actor,
    )
    request.app.state.serving.check()
    return summary.as_dict()


@router.post("/sync", response_model=SyncOut)
def sync(request: Request, who: AdminDep, settings: SettingsDep) -> dict[str, Any]:
    """Run a sync of the configured repository now and return its summary."""
    return run_sync(request, settings, who.name)


@router.post(
    "/hooks/git",
    status_code=202,
    response_model=HookOut,
    responses={401: {"description": "Missing or wrong signature"}},
)
async def git_hook(
    request: Request,
    background: BackgroundTasks,
    settings: SettingsDep,
    signature: Annotated[str | None, Header(alias="X-Hub-Signature-256")] = None,
) -> JSONResponse:
    """A push webhook (GitHub's HMAC signature): a push to the synced branch starts a sync."""
    body = await request.body()
    secret = settings.webhook_secret
    if not secret:
        raise HTTPException(401, "webhook refused: PROMPTREG_WEBHOOK_SECRET is not configured")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not signature or not hmac.compare_digest(expected, signature.strip()):
        raise HTTPException(401, "missing or wrong X-Hub-Signature-256")
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        raise HTTPException(422, "webhook body is not JSON") from None
    pushed = payload.get("ref") if isinstance(payload, dict) else None
    branch = settings.ref or _checked_out(settings)
    if pushed is not None and pushed != f"refs/heads/{branch}":
        return JSONResponse({"accepted": False, "detail": f"ignored push to {pushed}"}, 202)
    background.add_task(_background_sync, request, settings)
    return JSONResponse({"accepted": True, "detail": f"sync of {branch} started"}, 202)


def _checked_out(settings: Settings) -> str:
    repo, _ = open_repo(settings.repo, cache_dir=settings.cache_dir)
    return resolve_ref(repo, None)[0]


def _background_sync(request: Request, settings: Settings) -> None:
    try:
        summary = run_sync(request, settings, "webhook")
        log.info("webhook sync: %s", summary)
    except Exception as exc:  # the response is gone; log instead of raising
        log.error("webhook sync failed: %s", exc)

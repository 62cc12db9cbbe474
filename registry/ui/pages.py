"""The dashboard's pages, all readable without JavaScript: features, a feature, a diff of
two versions, the audit log. Any signed-in token reads them; actions are in actions.py.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from registry import labels
from registry.api.deps import SessionDep
from registry.api.schemas import LABEL_PATTERN, MAX_VERSION
from registry.store import crud
from registry.ui import detail, diffview
from registry.ui.auth import VisitorDep
from registry.ui.overview import SHOWS, SORTS, Overview, select_rows, sort_rows
from registry.ui.series import WINDOWS, chart_data
from registry.ui.views import PREFIX, PageRoute, page

router = APIRouter(prefix=PREFIX, route_class=PageRoute, include_in_schema=False)
PER_PAGE = 100
_LABEL = re.compile(LABEL_PATTERN)
COLUMNS = (
    ("name", "Feature", False),
    ("version", "Version", False),
    ("", "Rollout", False),
    ("requests", "Requests 24h", True),
    ("errors", "Error %", True),
    ("p95", "p95", True),
    ("cost", "Cost today", True),
    ("alarms", "Alarms", False),
    ("updated", "Label moved", False),
)
DESCENDING_FIRST = {"requests", "errors", "p95", "cost", "alarms", "updated"}
Text = Annotated[str, Query(max_length=200)]
LabelQuery = Annotated[str | None, Query(max_length=200)]


def label_of(request: Request, label: str | None) -> str:
    """The label asked for, or the server's; 422 for a malformed one."""
    chosen = label or request.app.state.settings.label
    if not _LABEL.match(chosen):
        raise HTTPException(422, "a label is letters, digits, '_', '.' and '-'")
    return str(chosen)


@router.get("", response_class=HTMLResponse)
def features(
    request: Request,
    visitor: VisitorDep,
    label: LabelQuery = None,
    q: Text = "",
    show: Text = "all",
    sort: Text = "name",
    order: Annotated[str, Query(alias="dir", max_length=10)] = "",
    page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """Every feature: label, version, pinned, rollout, requests, errors, p95, cost, alarms."""
    label = label_of(request, label)
    show = show if show in SHOWS else "all"
    sort = sort if sort in SORTS else "name"
    if order not in ("asc", "desc"):
        order = "desc" if sort in DESCENDING_FIRST else "asc"
    overview: Overview = request.app.state.ui_overview
    rows, catalog = overview.rows(label)
    chosen = sort_rows(select_rows(rows, query=q, show=show), by=sort, descending=order == "desc")
    pages = max(1, math.ceil(len(chosen) / PER_PAGE))
    page_number = min(page_number, pages)
    base = {"label": label, "q": q, "show": show}

    def sort_url(key: str) -> str:
        ascending_first = key not in DESCENDING_FIRST
        flip = "asc" if order == "desc" else "desc"
        direction = flip if key == sort else ("asc" if ascending_first else "desc")
        return f"{PREFIX}?{urlencode({**base, 'sort': key, 'dir': direction})}"

    def page_url(number: int) -> str:
        return f"{PREFIX}?{urlencode({**base, 'sort': sort, 'dir': order, 'page': number})}"

    context: dict[str, Any] = {
        "title": "Features",
        "nav": "features",
        "label": label,
        "labels": catalog.labels,
        "q": q,
        "show": show,
        "shows": SHOWS,
        "sort": sort,
        "dir": order,
        "columns": COLUMNS,
        "rows": chosen[(page_number - 1) * PER_PAGE : page_number * PER_PAGE],
        "count": len(chosen),
        "total": len(rows),
        "page": page_number,
        "pages": pages,
        "sort_url": sort_url,
        "page_url": page_url,
    }
    fragment = request.headers.get("hx-target") == "features"
    return page(request, "_features_table.html" if fragment else "features.html", context)


NOTICES = {
    "rollback": "Rolled back.",
    "promote": "Promoted.",
    "pause": "The rollout is paused.",
    "resume": "The rollout resumed.",
    "abort": "The rollout was aborted: the label stays on the stable version, pinned.",
    "complete": "The rollout completed: the candidate is the label's version.",
}


def _feature_context(
    request: Request, session: SessionDep, name: str, label: str, window: str
) -> dict[str, Any]:
    window = window if window in WINDOWS else WINDOWS[0]
    data = detail.load(session, request.app.state.serving, name, label=label, window=window)
    older = [v.version for v in data.versions if data.current and v.version < data.current]
    query = urlencode({"label": label, "window": window})
    return {
        "title": name,
        "nav": "features",
        "data": data,
        "window": window,
        "windows": WINDOWS,
        "chart": chart_data(data.points),
        "live_url": f"{PREFIX}/features/{name}/live?{query}",
        "rollback_default": older[0] if older else None,
    }


@router.get("/features/{name}", response_class=HTMLResponse)
def feature(
    name: str,
    request: Request,
    visitor: VisitorDep,
    session: SessionDep,
    label: LabelQuery = None,
    window: Text = "24h",
    done: Text = "",
) -> HTMLResponse:
    """A feature: versions, sample, policy, usage charts, rollout; actions for admins."""
    context = _feature_context(request, session, name, label_of(request, label), window)
    if done in NOTICES:
        data: detail.FeaturePage = context["data"]
        where = f" {data.label} serves v{data.current}" if data.current else ""
        pinned = " (pinned)" if data.pinned else ""
        context["notice"] = f"{NOTICES[done]}{where}{pinned}." if where else NOTICES[done]
    else:
        context["notice"] = None
    return page(request, "feature.html", context)


@router.get("/features/{name}/live", response_class=HTMLResponse)
def live(
    name: str,
    request: Request,
    visitor: VisitorDep,
    session: SessionDep,
    label: LabelQuery = None,
    window: Text = "24h",
) -> HTMLResponse:
    """The usage and rollout part of a feature's page, which the page refreshes by itself."""
    context = _feature_context(request, session, name, label_of(request, label), window)
    return page(request, "_live.html", context)


@router.get("/features/{name}/diff", response_class=HTMLResponse)
def diff(
    name: str,
    request: Request,
    visitor: VisitorDep,
    session: SessionDep,
    from_version: Annotated[int | None, Query(alias="from", ge=1, le=MAX_VERSION)] = None,
    to_version: Annotated[int | None, Query(alias="to", ge=1, le=MAX_VERSION)] = None,
    view: Text = "unified",
) -> HTMLResponse:
    """Prompt, policy and partials of two versions, and the token and cost delta."""
    feature = labels.feature_or_404(session, name)
    versions = crud.versions_of(session=session, feature=feature)
    if not versions:
        raise HTTPException(404, f"feature {name!r} has no versions yet")
    new = to_version or versions[0].version
    old = from_version or next((v.version for v in versions if v.version < new), new)
    change = labels.version_change(session, feature, old, new)
    context = {
        "title": f"{name} v{old} → v{new}",
        "nav": "features",
        "name": name,
        "versions": versions,
        "old": old,
        "new": new,
        "view": view if view in ("unified", "split") else "unified",
        "change": change,
        "parts": [
            ("Prompt", change.prompt_diff),
            ("Policy (effective, defaults merged)", change.policy_diff),
            ("Included partials", change.partials_diff),
        ],
        "unified": diffview.lines,
        "split": diffview.side_by_side,
    }
    return page(request, "diff.html", context)


@router.get("/audit", response_class=HTMLResponse)
def audit(
    request: Request,
    visitor: VisitorDep,
    session: SessionDep,
    feature: Text = "",
    label: Text = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> HTMLResponse:
    """Label moves and rollout decisions, newest first."""
    if label and not _LABEL.match(label):
        raise HTTPException(422, "a label is letters, digits, '_', '.' and '-'")
    entries = labels.audit(
        session, feature=feature.strip() or None, label=label or None, limit=limit
    )
    context = {
        "title": "Audit log",
        "nav": "audit",
        "entries": entries,
        "feature": feature,
        "label": label,
        "limit": limit,
    }
    return page(request, "audit.html", context)

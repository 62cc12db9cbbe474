"""The dashboard, served by `promptreg serve` at /ui (SPEC §11).

Server-rendered pages over the same domain code as the API and the CLI, readable without
JavaScript; htmx (filtering as you type, live figures) and uPlot (charts) are vendored in
static/vendor/ with their licences, so nothing is fetched from elsewhere.

    auth.py       sign-in with an API token, the session cookie, CSRF, roles
    views.py      templates, security headers, error pages
    overview.py   the features page's numbers, cheap at 1,000 features
    detail.py     one feature's page: versions, sample, policy, usage, rollout arms
    series.py     a feature's usage hour by hour, for the charts
    diffview.py   unified diffs, line by line or side by side
    pages.py      the pages (GET); actions.py: confirmations and the actions (POST)
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from registry.ui import actions, auth, pages
from registry.ui.overview import Overview
from registry.ui.views import HERE, PREFIX, PageRoute

__all__ = ["install"]

fallback = APIRouter(prefix=PREFIX, route_class=PageRoute, include_in_schema=False)


@fallback.get("/{path:path}", response_class=HTMLResponse)
def not_found(path: str) -> HTMLResponse:
    """Any other path under /ui: a 404 page."""
    raise HTTPException(404, "There is no such page in the dashboard.")


class Static(StaticFiles):
    """The package's static files, never sniffed into another type."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers.setdefault("Cache-Control", "public, max-age=3600")
        return response


def install(app: FastAPI) -> None:
    """Serve the dashboard from `app` (after its API routes; needs its engine and cache)."""
    serving = app.state.serving
    app.state.ui_overview = Overview(app.state.engine, lambda: serving.generation)
    app.mount(f"{PREFIX}/static", Static(directory=HERE / "static"), name="ui-static")
    for router in (auth.router, actions.router, pages.router, fallback):
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        """The root leads to the dashboard."""
        from registry.ui.views import see_other

        return see_other(PREFIX)

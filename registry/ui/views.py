"""How the dashboard answers: its templates, the headers on every page, its error pages.

Every value reaches HTML through Jinja's autoescaping (commit messages, prompt sources,
reasons, names: all text from git or from usage), and pages carry a Content-Security-Policy
that allows scripts, styles and requests from this origin only, so even a value that
slipped through could not run or call out. `PageRoute` turns the errors a page or an
action raises into an HTML page with the same status the API would answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from registry.errors import PromptregError, http_status

log = logging.getLogger("promptreg.ui")
HERE = Path(__file__).parent
PREFIX = "/ui"

# No inline script or style anywhere: the templates use classes, the scripts are files.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def visitor_of(request: Request) -> Any:
    """The signed-in visitor a dependency of this request found (None on the sign-in page)."""
    return getattr(request.state, "visitor", None)


class SignInRequired(Exception):
    """A page was asked for without a live session: answer with the sign-in page."""


def _number(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _usd(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "–"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.{digits}f}"


def _signed(value: float | int | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:+,.{digits}f}"


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        number=_number,
        usd=_usd,
        signed=_signed,
        when=_when,
        duration=_duration,
        urlpart=lambda value: quote(str(value), safe=""),
        first_line=_first_line,
    )
    return env


templates = _environment()


def page(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """An HTML page (or fragment) with the dashboard's security headers."""
    body = templates.get_template(template).render(
        **{"nav": "", **context}, request=request, visitor=visitor_of(request), prefix=PREFIX
    )
    return HTMLResponse(body, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def see_other(url: str) -> RedirectResponse:
    """Go to `url` with a GET (after a form was posted)."""
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    """An error, worded for a person, with the status the API would answer."""
    titles = {
        401: "Sign-in needed",
        403: "Not allowed",
        404: "Not found",
        409: "Cannot do that now",
        410: "Retired",
        422: "Cannot use that",
    }
    title = titles.get(status, "Something went wrong")
    return page(request, "error.html", {"title": title, "message": message}, status=status)


def sign_in_url(request: Request) -> str:
    """The sign-in page, coming back to this page afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{PREFIX}/login?next={quote(target, safe='')}"


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class PageRoute(APIRoute):
    """A dashboard route: its errors answer as HTML pages, an absent session as sign-in."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                if request.headers.get("hx-request"):
                    # htmx swaps what it gets; a redirect of the whole page is what helps
                    return Response(status_code=204, headers={"HX-Redirect": sign_in_url(request)})
                return see_other(sign_in_url(request))
            except PromptregError as exc:
                return error_page(request, http_status(exc), str(exc))
            except HTTPException as exc:
                return error_page(request, exc.status_code, str(exc.detail))
            except RequestValidationError as exc:
                fields = ", ".join(
                    str(err.get("loc", ("?",))[-1]) for err in exc.errors() if err.get("loc")
                )
                return error_page(request, 422, f"invalid value for: {fields or 'the request'}")

        return route

"""The web application every part shares: its context, security headers, templates, static files, language.

A part is a function ``setup(app: web.Application) -> None`` that adds routes (and may read
``app[CONTEXT]``); :func:`build_web_app` calls each in order. Pages render with :func:`render`, which gives
templates ``t`` (the text catalogue in the page's language) and ``lang``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from sqlalchemy import Engine

from bot.render.texts import plain
from config.settings import LANGUAGES, Language, Settings

Setup = Callable[[web.Application], None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LANGUAGE_COOKIE = "yihu_lang"

# No inline script or style anywhere: every page loads its script and styles from /static.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@dataclass
class WebContext:
    """What the web parts need: the settings, the database, Redis (None where a part does without)."""

    settings: Settings
    engine: Engine
    redis_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # a part's own state, by the part's name


CONTEXT = web.AppKey("yihu_web_context", WebContext)
TEMPLATES = web.AppKey("yihu_web_templates", jinja2.Environment)


def template_environment() -> jinja2.Environment:
    """Templates from the installed package, HTML-escaped by default (names and texts come from villagers)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("bot.web", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
    )


def static_dir() -> Path:
    return Path(str(resources.files("bot.web") / "static"))


def page_language(request: web.Request) -> Language:
    """``?lang=`` (remembered in a cookie), else the cookie, else ``YIHU_LANGUAGE``: Chinese first, whatever
    the browser's own language, with the switch on every page."""
    for asked in (request.query.get("lang"), request.cookies.get(LANGUAGE_COOKIE)):
        if asked == "zh":
            return "zh"
        if asked == "en":
            return "en"
    return request.app[CONTEXT].settings.language


def render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    """A page in the request's language; ``t(key, **params)`` in templates gives the plain catalogue text
    (escaped by the template, never marked safe)."""
    language = page_language(request)

    def text(key: str, /, **params: Any) -> str:
        return plain(language, key, **params)

    body = request.app[TEMPLATES].get_template(template).render(t=text, lang=language, **values)
    response = web.Response(text=body, status=status, content_type="text/html", charset="utf-8")
    if request.query.get("lang") in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, request.query["lang"], max_age=365 * 86400, samesite="Lax",
                            httponly=True)
    return response


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response


def build_web_app(context: WebContext, parts: Iterable[Setup] = ()) -> web.Application:
    """The application: security headers on every answer, ``/static/``, then each part's routes in order."""
    app = web.Application(middlewares=[security_headers])
    app[CONTEXT] = context
    app[TEMPLATES] = template_environment()
    app.router.add_static("/static/", static_dir(), name="static")
    for setup in parts:
        setup(app)
    return app

"""The console's web application (Starlette, server-rendered Jinja2 pages, no scripts).

Pages: ``/`` (the queue), ``/campaign/{id}`` (and ``/campaign/{id}/stix.json``), ``/account/{id}``,
``/audit``; ``POST /decide`` records a decision. Every page needs a session (``/login``, or the reverse
proxy's identity header); every POST carries the session's CSRF token; read-only users see the pages
without the decision forms, and their POSTs are refused (403). Bad input is a 4xx page naming the field.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from distillguard.console.auth import Session, csrf_ok
from distillguard.console.decisions import ENFORCEMENTS, MAX_EXPIRY_DAYS, Decision
from distillguard.console.pages import account_page, audit_page, campaign_page, queue_page, stix_bundle
from distillguard.console.state import Console
from distillguard.errors import DistillGuardError, InputError

log = logging.getLogger(__name__)
COOKIE = "dg_console"
LOGIN_COOKIE = "dg_login"
_ENV = jinja2.Environment(loader=jinja2.PackageLoader("distillguard.console", "templates"),
                          autoescape=jinja2.select_autoescape(["html"]), undefined=jinja2.StrictUndefined)
_CSS = resources.files("distillguard.console").joinpath("static/console.css").read_bytes()
_HEADERS = {  # no scripts at all; the pages' SVG styles come from the stylesheet and presentation attributes
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff", "referrer-policy": "same-origin", "cache-control": "no-store",
}


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _num(value: float | int | None, fmt: str = "{:,.2f}") -> str:
    return "-" if value is None else fmt.format(value)


_ENV.filters["when"] = _when
_ENV.filters["num"] = _num
_ENV.filters["url"] = lambda s: quote(str(s), safe="")
_ENV.globals.update(ENFORCEMENTS=ENFORCEMENTS, MAX_EXPIRY_DAYS=MAX_EXPIRY_DAYS)


def render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_ENV.get_template(template).render(**context), status_code=status, headers=_HEADERS)


def _problem(status: int, message: str, session: Session | None = None) -> HTMLResponse:
    return render("problem.html", status=status, message=message, session=session, title=f"{status}")


class _Auth:
    """Finds the request's session: the identity header's user, or the login cookie's."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def session(self, request: Request) -> tuple[Session | None, str | None]:
        """(session, a new cookie value to set, if one was started for a header user)."""
        sessions, header = self.console.sessions, self.console.settings.trust_header
        token = request.cookies.get(COOKIE)
        current = sessions.get(token)
        if header is None:
            return current, None
        name = request.headers.get(header, "").strip()
        if not name:
            return None, None
        if current is not None and current.user.name == name:
            return current, None
        token = sessions.for_header_user(self.console.user_for_header(name))
        return sessions.get(token), token


Handler = Callable[[Request, Session], Awaitable[Response]]


def create_app(console: Console) -> Starlette:
    """The ASGI app over ``console``."""
    auth = _Auth(console)

    def page(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session, new_token = auth.session(request)
            if session is None:
                if console.settings.trust_header:
                    return _problem(401, f"no user: the {console.settings.trust_header} header is missing")
                if request.method != "GET":
                    return _problem(403, "log in first")
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?{urlencode({'next': target})}", status_code=303)
            try:
                response = await handler(request, session)
            except InputError as exc:
                response = _problem(400, str(exc), session)
            except KeyError as exc:
                response = _problem(404, f"not found: {exc.args[0] if exc.args else ''}", session)
            except DistillGuardError as exc:
                response = _problem(503, str(exc), session)
            if new_token:
                _set_cookie(response, COOKIE, new_token)
            return response
        return endpoint

    async def queue(request: Request, session: Session) -> Response:
        ctx = await run_in_threadpool(queue_page, console, dict(request.query_params))
        return render("queue.html", session=session, title="Queue", **ctx)

    async def campaign(request: Request, session: Session) -> Response:
        ctx = await run_in_threadpool(campaign_page, console, request.path_params["campaign_id"])
        return render("campaign.html", session=session, title=ctx["c"].campaign_id,
                      done=_done(request), **ctx)

    async def account(request: Request, session: Session) -> Response:
        ctx = await run_in_threadpool(account_page, console, request.path_params["account_id"])
        return render("account.html", session=session, title=request.path_params["account_id"],
                      done=_done(request), **ctx)

    async def audit(request: Request, session: Session) -> Response:
        ctx = await run_in_threadpool(audit_page, console)
        return render("audit.html", session=session, title="Audit", **ctx)

    async def stix(request: Request, session: Session) -> Response:
        campaign_id = request.path_params["campaign_id"]
        body = await run_in_threadpool(stix_bundle, console, campaign_id)
        return Response(body, media_type="application/stix+json;version=2.1", headers={
            "content-disposition": f'attachment; filename="{campaign_id}.stix.json"', **_HEADERS})

    async def decide(request: Request, session: Session) -> Response:
        form = await _form(request)
        if not csrf_ok(session.csrf, form.get("csrf")):
            return _problem(403, "the form's CSRF token is missing or stale: reload the page and try again", session)
        if not session.user.can_decide:
            return _problem(403, f"{session.user.name} is a read-only user and cannot decide", session)
        d = await run_in_threadpool(_decision, console, session, form)
        stored = await run_in_threadpool(console.decide, d)
        where = "campaign" if stored.subject_kind == "campaign" else "account"
        return RedirectResponse(f"/{where}/{quote(stored.subject_id, safe='')}?done={stored.id}", status_code=303)

    async def login(request: Request) -> Response:
        next_url = request.query_params.get("next", "/")
        if request.method == "GET":
            nonce = secrets.token_urlsafe(24)
            response = render("login.html", session=None, title="Log in", nonce=nonce, next=next_url, message=None)
            _set_cookie(response, LOGIN_COOKIE, nonce)
            return response
        try:
            form = await _form(request)
        except InputError as exc:
            return _problem(400, str(exc))
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not nonce or not csrf_ok(nonce, form.get("csrf")):
            return _problem(403, "the login form's CSRF token is missing or stale: reload the page")
        name, password = str(form.get("username", "")), str(form.get("password", ""))
        user = console.users.get(name)
        ok = await run_in_threadpool(user.check, password) if user else False
        if user is None or not ok:
            response = render("login.html", status=401, session=None, title="Log in", nonce=nonce, next=next_url,
                              message="unknown user or wrong password")
            return response
        redirect = RedirectResponse(_local(str(form.get("next", "/"))), status_code=303)
        _set_cookie(redirect, COOKIE, console.sessions.start(user))
        redirect.delete_cookie(LOGIN_COOKIE, path="/")
        log.info("%s logged in", name)
        return redirect

    async def logout(request: Request, session: Session) -> Response:
        form = await _form(request)
        if not csrf_ok(session.csrf, form.get("csrf")):
            return _problem(403, "the form's CSRF token is missing or stale", session)
        console.sessions.end(request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    async def css(_: Request) -> Response:
        return Response(_CSS, media_type="text/css", headers={"cache-control": "max-age=300",
                                                               "x-content-type-options": "nosniff"})

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        Route("/", page(queue)),
        Route("/campaign/{campaign_id}", page(campaign)),
        Route("/campaign/{campaign_id}/stix.json", page(stix)),
        Route("/account/{account_id}", page(account)),
        Route("/audit", page(audit)),
        Route("/decide", page(decide), methods=["POST"]),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", page(logout), methods=["POST"]),
        Route("/static/console.css", css),
        Route("/healthz", healthz),
    ]
    return Starlette(routes=routes)


def _decision(console: Console, session: Session, form: dict[str, str]) -> Decision:
    """The decision a form asks for, checked against the scan (``InputError`` names the bad field)."""
    scan = console.scan()
    kind, subject_kind, subject_id = form.get("kind", ""), form.get("subject_kind", ""), form.get("subject_id", "")
    cluster_id: str | None = None
    members: tuple[str, ...] = ()
    if subject_kind == "campaign":
        c = scan.by_id.get(subject_id)
        if c is None:
            raise InputError(f"subject id: no campaign {subject_id!r} in the current scan")
        cluster_id, members = c.cluster_id, tuple(c.account_ids)
    elif subject_kind == "account" and scan.account(subject_id) is None:
        raise InputError(f"subject id: no account {subject_id!r} in the current scan")
    expires = None
    if kind == "confirm":
        try:
            expires = float(form.get("expires_days", ""))
        except ValueError:
            raise InputError("expiry: a number of days") from None
    undoes = None
    if kind == "undo":
        try:
            undoes = int(form.get("undoes", ""))
        except ValueError:
            raise InputError("undo: the id of the decision to undo") from None
    return Decision.new(session.user.name, kind, subject_kind=subject_kind, subject_id=subject_id, scan=scan.key,
                        enforcement=form.get("enforcement") or None, expires_days=expires,
                        note=form.get("note", ""), cluster_id=cluster_id, members=members, undoes=undoes)


MAX_FORM_BYTES = 64 * 1024


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form of a POST (the console's forms are small; a larger or other body is a 4xx).

    Parsed here rather than by Starlette's ``request.form()``, which needs python-multipart for nothing the
    console sends.
    """
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    if kind != "application/x-www-form-urlencoded":
        raise InputError(f"form: expected application/x-www-form-urlencoded, got {kind or 'no content type'}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise InputError(f"form: larger than {MAX_FORM_BYTES // 1024} KiB")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=50)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"form: not a urlencoded UTF-8 form ({exc})") from exc
    return dict(pairs)


def _done(request: Request) -> str | None:
    """The decision id a redirect after a decision names (digits only: the page shows it)."""
    done = request.query_params.get("done", "")
    return done if done.isdigit() and len(done) < 12 else None


def _local(url: str) -> str:
    """``url`` if it is a path on this site, else ``/`` (no open redirect after login).

    >>> _local("/campaign/c1?x=1"), _local("//evil.example/"), _local("https://evil.example/")
    ('/campaign/c1?x=1', '/', '/')
    """
    return url if url.startswith("/") and not url.startswith("//") and "\\" not in url else "/"


def _set_cookie(response: Response, name: str, value: str) -> None:
    response.set_cookie(name, value, httponly=True, samesite="strict", path="/")


__all__ = ["create_app"]

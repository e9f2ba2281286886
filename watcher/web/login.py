"""Logging in and out: a token link (printed at start), or a name and password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from watcher.web.auth import Principal
from watcher.web.context import Console, console
from watcher.web.pages import form_of, render
from watcher.web.security import COOKIE

router = APIRouter()
Ctx = Annotated[Console, Depends(console)]


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def _logged_in(request: Request, ctx: Console, who: Principal,
               token: str | None = None) -> Response:
    sid, _ = ctx.auth.open_session(who, token)
    response = RedirectResponse("/alerts", status_code=303)
    response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")
    return response


def _refused(request: Request, ctx: Console, message: str) -> Response:
    ctx.auth.throttle.failed(_client(request))
    return render(request, "login.html", 401, error=message, who=None)


def _throttled(request: Request, ctx: Console) -> Response | None:
    wait = ctx.auth.throttle.retry_after(_client(request))
    if wait <= 0:
        return None
    response = render(request, "login.html", 429, who=None,
                      error=f"Too many failed attempts; try again in {int(wait) + 1} s.")
    response.headers["Retry-After"] = str(int(wait) + 1)
    return response


@router.get("/login", include_in_schema=False)
def login_page(request: Request, ctx: Ctx, token: str | None = None) -> Response:
    if token is None:
        return render(request, "login.html", who=None)
    if (slow := _throttled(request, ctx)) is not None:
        return slow
    who = ctx.auth.by_token(token)
    if who is None:
        return _refused(request, ctx, "That login link is not valid.")
    ctx.auth.throttle.succeeded(_client(request))
    return _logged_in(request, ctx, who, token)


@router.post("/login", include_in_schema=False)
async def login(request: Request, ctx: Ctx) -> Response:
    if (slow := _throttled(request, ctx)) is not None:
        return slow
    form = await request.form()
    name, password, token = (str(form.get(k) or "") for k in ("name", "password", "token"))
    who = ctx.auth.by_token(token) if token else ctx.auth.by_password(name, password)
    if who is None:
        return _refused(request, ctx, "Wrong name, password or token.")
    ctx.auth.throttle.succeeded(_client(request))
    return _logged_in(request, ctx, who, token or None)


@router.post("/logout", include_in_schema=False)
async def logout(request: Request, ctx: Ctx) -> Response:
    await form_of(request)
    ctx.auth.close_session(request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response

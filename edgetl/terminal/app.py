"""The operator terminal: a web application at the line, and a gRPC client of the server.

`edgetl serve` starts one beside the gRPC server (over the server's Unix
socket); `edgetl terminal --server HOST:PORT` runs one on another machine.
Everything the page needs is served from ``static/`` (no CDN, no build
step, no third-party JavaScript). The API (api.py) answers JSON; this module
holds the app: sessions and sign-in, CSRF checks, error mapping, security
headers, static files, and starting and stopping.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import grpc
from aiohttp import web

from edgetl.api.v1 import model_pb2
from edgetl.errors import ConfigError
from edgetl.terminal import api
from edgetl.terminal.client import ChannelSpec, ServerClient, explain
from edgetl.terminal.sessions import COOKIE, CSRF_HEADER, SESSION, Expired, Session, Sessions

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
SESSIONS = web.AppKey("sessions", Sessions)
HTTPS = web.AppKey("https", bool)
EXPIRED = web.RequestKey("expired", str)  # why a new session was made, for the sign-in form
#: Roles that may use the terminal; a camera's `inference` role may not.
TERMINAL_ROLES = ("operator", "admin")

#: Nothing from elsewhere: scripts, styles, images and connections are this origin's only.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} seconds"
    if seconds < 7200:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds / 3600:.1f} hours"


def _error(status: int, message: str, code: str = "") -> web.Response:
    return web.json_response({"error": message, "code": code}, status=status)


@web.middleware
async def guard(request: web.Request, handler):
    """Every /api call: a live session (signed in where the server has security) and, for changes, the CSRF token."""
    response = await _guarded(request, handler) if request.path.startswith("/api/") else await handler(request)
    if not response.prepared:  # a stream (server-sent events) has sent its headers already
        response.headers.update(SECURITY_HEADERS)
    return response


async def _guarded(request: web.Request, handler) -> web.StreamResponse:
    sessions = request.app[SESSIONS]
    expired_message = f"Your session ended after {_duration(sessions.idle_s)} without use; sign in again."
    try:
        session = sessions.get(request.cookies.get(COOKIE))
    except Expired:
        if request.path != "/api/session" or request.method != "GET":
            return _error(401, expired_message, "session_expired")
        session, request[EXPIRED] = None, expired_message  # the page asks who is here: a new session, and why
    changing = request.method not in ("GET", "HEAD", "OPTIONS")
    if request.path != "/api/session":
        if session is None or not session.signed_in:
            return _error(401, "Sign in first.", "signed_out")
    if changing and (session is None or request.headers.get(CSRF_HEADER) != session.csrf):
        return _error(403, "This page is out of date (its security token does not match); reload it.", "csrf")
    request[SESSION] = session
    try:
        return await handler(request)
    except grpc.aio.AioRpcError as exc:
        status, message, code = explain(exc, request.app[api.CLIENT].spec.target)
        if code == "UNAUTHENTICATED" and session is not None:
            sessions.end(session)  # the server no longer takes these credentials
        return _error(status, message, code)
    except api.BadRequest as exc:
        return _error(400, str(exc), "INVALID_ARGUMENT")


def _session_json(session: Session, **extra) -> dict:
    return {"signed_in": session.signed_in, "name": session.name, "role": session.role, "security": session.security, "csrf": session.csrf, **extra}


def _set_cookie(request: web.Request, response: web.Response, session: Session) -> None:
    response.set_cookie(COOKIE, session.id, httponly=True, samesite="Strict", secure=request.app[HTTPS], path="/")


async def get_session(request: web.Request) -> web.Response:
    """The page's first call: who is here. Makes a session (and signs in, without security) if there is none."""
    session = request[SESSION]
    if session is None:
        session = await _new_session(request)
    response = web.json_response(_session_json(session, server=request.app[api.CLIENT].spec.target, expired=request.get(EXPIRED, "")))
    _set_cookie(request, response, session)
    return response


async def _new_session(request: web.Request) -> Session:
    """Ask the server who an anonymous caller is: on a server without security, everyone local is admin."""
    client: ServerClient = request.app[api.CLIENT]
    sessions = request.app[SESSIONS]
    try:
        me = await client.models.WhoAmI(model_pb2.WhoAmIRequest(), timeout=10)
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
            raise
        return sessions.new(security=True)
    if me.security:
        return sessions.new(security=True)  # someone anonymous is known to it (a client certificate): still sign in
    return sessions.new(name=me.name, role=me.role, security=False)


async def sign_in(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "send {\"token\": ...}", "INVALID_ARGUMENT")
    token = str(body.get("token", "")).strip() if isinstance(body, dict) else ""
    if not token:
        return _error(400, "Enter your token.", "INVALID_ARGUMENT")
    client: ServerClient = request.app[api.CLIENT]
    try:
        me = await client.models.WhoAmI(model_pb2.WhoAmIRequest(), timeout=10, metadata=(("authorization", f"Bearer {token}"),))
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            return _error(401, "That token is not known to the server. Check it, or ask an admin for one (edgetl token new).", "UNAUTHENTICATED")
        raise
    if me.role not in TERMINAL_ROLES:
        return _error(403, f"{me.name} has role {me.role!r}; the terminal is for operators and admins.", "PERMISSION_DENIED")
    sessions = request.app[SESSIONS]
    old = request[SESSION]
    if old is not None:
        sessions.end(old)  # a new session id on sign-in: a cookie planted before cannot ride along
    session = sessions.new(token=token, name=me.name, role=me.role, security=True)
    log.info("terminal: %s (%s) signed in", me.name, me.role)
    response = web.json_response(_session_json(session))
    _set_cookie(request, response, session)
    return response


async def sign_out(request: web.Request) -> web.Response:
    session = request[SESSION]
    request.app[SESSIONS].end(session)
    response = web.json_response({"signed_in": False})
    response.del_cookie(COOKIE, path="/")
    return response


async def no_icon(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def create_app(client: ServerClient, idle_s: float = 3600.0, https: bool = False, max_upload: int = 32 * 1024 * 1024) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=max_upload + 1024 * 1024)
    app[api.CLIENT] = client
    app[SESSIONS] = Sessions(idle_s)
    app[HTTPS] = https
    app[api.MAX_UPLOAD] = max_upload
    app[api.THUMBNAILS] = OrderedDict()
    app.add_routes([
        web.get("/", index),
        web.get("/favicon.ico", no_icon),
        web.get("/api/session", get_session),
        web.post("/api/session", sign_in),
        web.delete("/api/session", sign_out),
        *api.routes(),
        web.static("/static", STATIC, append_version=False),
    ])
    return app


@dataclass
class TerminalConfig:
    host: str
    port: int
    idle_s: float = 3600.0
    tls_cert: str = ""  # HTTPS
    tls_key: str = ""
    insecure: bool = False  # allow a non-loopback address over plain HTTP
    max_upload: int = 32 * 1024 * 1024


class Terminal:
    """A running terminal: `await start()` returns its URL, `await stop()` ends it."""

    def __init__(self, channel: ChannelSpec, config: TerminalConfig):
        self.channel = channel
        self.config = config
        self.client: ServerClient | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        config = self.config
        context = _ssl_context(config)
        _check_bind(config.host, context is not None, config.insecure)
        self.client = ServerClient(self.channel, config.max_upload + 1024 * 1024)
        app = create_app(self.client, config.idle_s, https=context is not None, max_upload=config.max_upload)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, config.host, config.port, ssl_context=context, reuse_address=False)
        try:
            await site.start()
        except OSError as exc:
            await self.stop()
            raise ConfigError(f"the terminal cannot listen on {config.host}:{config.port} ({exc.strerror or exc}); set [terminal] terminal_port, or terminal = false") from exc
        port = site._server.sockets[0].getsockname()[1]  # the real one when 0 was asked for
        host = f"[{config.host}]" if ":" in config.host else config.host
        self.url = f"{'https' if context else 'http'}://{host}:{port}/"
        log.info("operator terminal on %s (server %s)", self.url, self.channel.target)
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.client is not None:
            await self.client.close()
            self.client = None


def _ssl_context(config: TerminalConfig) -> ssl.SSLContext | None:
    if not config.tls_cert and not config.tls_key:
        return None
    if not (config.tls_cert and config.tls_key):
        raise ConfigError("[terminal] terminal_tls_cert and terminal_tls_key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"the terminal's certificate cannot be used: {exc}") from exc
    return context


def _check_bind(host: str, https: bool, insecure: bool) -> None:
    """Tokens and session cookies must not cross a plant network in clear text."""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if loopback or https:
        return
    if not insecure:
        raise ConfigError(
            f"refusing to serve the terminal on {host} over plain HTTP: sign-in tokens would cross the network in clear text; "
            "set [terminal] terminal_tls_cert/terminal_tls_key (or [security] tls_cert/tls_key), or pass --insecure"
        )
    log.warning("the terminal serves %s over plain HTTP (--insecure)", host)

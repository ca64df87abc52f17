"""Who may see the page: anyone on this machine when it listens on loopback, token holders otherwise.

The page shows people's emotions, so it must not leak onto a network by accident: it binds
127.0.0.1 unless told otherwise, and any other address (a LAN address, 0.0.0.0, a host name)
needs an access token, or it refuses to start. A browser presents the token as the password of
HTTP Basic auth (it asks once), or opens `/?token=...` once, which sets a cookie; scripts send
`Authorization: Bearer <token>`. The page itself is plain HTTP: on an untrusted network put a
TLS reverse proxy in front of it.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web

from dashboard.config import ACCESS_TOKEN_ENV, ConfigError

COOKIE = "edge_emotion_dashboard"
TOKEN_HOW = f"--access-token-file FILE or {ACCESS_TOKEN_ENV}"


def is_loopback(host: str) -> bool:
    """True only for addresses that cannot be reached from another machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything


def check_exposure(host: str, token: str | None) -> str:
    """The start-up line saying who can reach the page; ConfigError when a token is missing."""
    if is_loopback(host):
        return "loopback only, access token required" if token else "loopback only, no password needed"
    if not token:
        raise ConfigError(f"--host {host} is reachable from the network: set an access token "
                          f"({TOKEN_HOW}) or serve on 127.0.0.1")
    return (f"listening on {host}, reachable from the network: access token required "
            "(HTTP Basic password, Bearer token, or open /?token=... once)")


def _presented(request: web.Request) -> list[str]:
    """Every token the request carries, whichever way it was sent."""
    found = [request.cookies.get(COOKIE, ""), request.query.get("token", "")]
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        found.append(value.strip())
    elif scheme.lower() == "basic":
        with contextlib.suppress(ValueError):  # binascii.Error and UnicodeDecodeError are ValueErrors
            found.append(base64.b64decode(value.strip()).decode("utf-8").partition(":")[2])
    return [t for t in found if t]


def token_middleware(token: str) -> Callable:
    """Reject every request without the token; a `?token=` visit becomes a cookie and a clean URL."""
    expected = token.encode()

    @web.middleware
    async def require_token(request: web.Request,
                            handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                            ) -> web.StreamResponse:
        if not any(hmac.compare_digest(t.encode(), expected) for t in _presented(request)):
            raise web.HTTPUnauthorized(text="access token required\n",
                                       headers={"WWW-Authenticate": 'Basic realm="edge-emotion dashboard"'})
        if "token" in request.query:
            clean = request.rel_url.without_query_params("token")
            response = web.HTTPFound(str(clean))
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
            raise response
        return await handler(request)

    return require_token

"""Small JSON-over-HTTP client for network plugs, with timeouts and one-line errors.

Plugs are cheap Wi-Fi devices that drop off the network, reboot and
occasionally answer with an HTML error page; every one of those cases must end
as a :class:`PowerSwitchError` naming the URL, never a urllib traceback or a
test hanging on a socket. Only the standard library is used: the plugs speak
plain HTTP/1.1 and the harness should not need ``requests`` for two GETs.

Authentication: HTTP Basic is sent up front when asked (Shelly Gen1). HTTP
Digest (RFC 7616, ``qop=auth``) is answered after a 401 challenge; Shelly
Gen2+ devices use it with SHA-256, which :mod:`urllib.request`'s digest
handler does not implement, hence the few lines here.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from .base import PowerSwitchError

log = logging.getLogger(__name__)

_SNIPPET = 120
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')
_DIGESTS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def base_url(host: str) -> str:
    """``192.168.1.7`` or ``http://plug.lan:8080/`` -> ``http://...`` without a trailing slash."""
    host = host.strip().rstrip("/")
    return host if re.match(r"^https?://", host, re.IGNORECASE) else f"http://{host}"


def snippet(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", errors="replace").split())
    return repr(text if len(text) <= _SNIPPET else text[:_SNIPPET] + "...")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


class HttpDevice:
    """One plug's HTTP API. ``label`` names the device kind in errors (``"Tasmota plug"``)."""

    def __init__(self, host: str, *, label: str, timeout: float = 3.0, basic: Credentials | None = None,
                 digest: Credentials | None = None):
        self.base = base_url(host)
        self.label = label
        self.timeout = timeout
        self._basic = basic
        self._digest = digest
        # plugs sit on the bench network: an http_proxy meant for the internet must not carry their requests
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def request(self, method: str, path: str, *, query: str = "", body: bytes | None = None,
                content_type: str | None = None, shown_query: str | None = None, expected: str) -> bytes:
        """Send one request and return the body of a 2xx answer.

        ``shown_query`` replaces the query in error messages when it carries a
        password (Tasmota), so secrets never reach a test report.
        """
        url = f"{self.base}{path}" + (f"?{query}" if query else "")
        shown = shown_query if shown_query is not None else query
        what = f"{method} {path}" + (f"?{shown}" if shown else "") + (f" {body.decode(errors='replace')}"
                                                                         if body else "")
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        if self._basic is not None:
            token = base64.b64encode(f"{self._basic.username}:{self._basic.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        try:
            try:
                return self._send(method, url, body, headers)
            except urllib.error.HTTPError as e:
                challenge = e.headers.get("WWW-Authenticate", "") if e.headers else ""
                if e.code != 401 or self._digest is None or not challenge.lower().startswith("digest"):
                    raise
                headers["Authorization"] = digest_authorization(
                    challenge, method, urllib.parse.urlsplit(url), self._digest)
                return self._send(method, url, body, headers)
        except urllib.error.HTTPError as e:
            raise self._http_error(what, expected, e) from None
        except UnsupportedDigest as e:
            raise PowerSwitchError(f"{self.label} {self.base}: {what}: expected {expected}: {e}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            raise self._unreachable(what, expected, e) from None

    def request_json(self, method: str, path: str, *, expected: str, **kwargs: Any) -> Any:
        """:meth:`request` whose answer must be JSON."""
        body = self.request(method, path, expected=expected, **kwargs)
        try:
            return json.loads(body)
        except ValueError:
            raise PowerSwitchError(f"{self.label} {self.base}: {method} {path}: expected {expected}, "
                                   f"got non-JSON {snippet(body)}") from None

    def _send(self, method: str, url: str, body: bytes | None, headers: dict[str, str]) -> bytes:
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        log.debug("%s: %s %s", self.label, method, url.split("?")[0])
        with self._opener.open(request, timeout=self.timeout) as response:
            return response.read()

    def _http_error(self, what: str, expected: str, error: urllib.error.HTTPError) -> PowerSwitchError:
        try:
            body = error.read()
        except (OSError, http.client.HTTPException):
            body = b""
        hint = " (check the credentials)" if error.code in (401, 403) else ""
        return PowerSwitchError(f"{self.label} {self.base}: {what}: expected {expected}, "
                                f"got HTTP {error.code} {error.reason}{hint}: {snippet(body)}")

    def _unreachable(self, what: str, expected: str, error: BaseException) -> PowerSwitchError:
        reason = getattr(error, "reason", None) or error
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            problem = f"no answer within {self.timeout:g} s"
        else:
            problem = " ".join(str(reason).split()) or type(reason).__name__
        return PowerSwitchError(f"{self.label} {self.base}: {what}: expected {expected}: {problem}")


class UnsupportedDigest(Exception):
    pass


def digest_authorization(challenge: str, method: str, url: urllib.parse.SplitResult, creds: Credentials) -> str:
    """The ``Authorization`` header answering an RFC 7616 Digest challenge with ``qop=auth``."""
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _CHALLENGE_PARAM.finditer(challenge[len("digest"):])}
    algorithm = (params.get("algorithm") or "MD5").upper()
    if algorithm not in _DIGESTS:
        raise UnsupportedDigest(f"the device asks for HTTP digest algorithm {algorithm}, "
                                f"supported are {', '.join(_DIGESTS)}")

    def h(text: str) -> str:
        return _DIGESTS[algorithm](text.encode()).hexdigest()

    uri = url.path + (f"?{url.query}" if url.query else "")
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    ha1 = h(f"{creds.username}:{realm}:{creds.password}")
    ha2 = h(f"{method}:{uri}")
    cnonce = os.urandom(8).hex()
    nc = "00000001"
    fields = [f'username="{creds.username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
              f"algorithm={algorithm}"]
    if "auth" in [q.strip() for q in (params.get("qop") or "").split(",")]:
        response = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        fields += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        response = h(f"{ha1}:{nonce}:{ha2}")
    fields.append(f'response="{response}"')
    if "opaque" in params:
        fields.append(f'opaque="{params["opaque"]}"')
    return "Digest " + ", ".join(fields)

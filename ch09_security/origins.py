"""Which web pages may open a stream: an allowlist of `Origin`s.

Chapter 9, "Rate limiting and abuse prevention for inference
endpoints". A browser lets any page open a WebSocket to any host, and
says which page asked in the `Origin` header of the upgrade; a server
that does not look lets every site on the web use it through its
visitors' browsers (cross-site WebSocket hijacking, CWE-1385). So an
upgrade whose `Origin` is not listed is refused 403 before it opens.
This service's credentials are not ambient (no cookie: a page must
present a key or token itself), so there is no visitor's session to
ride; the list still confines browser use to the sites an operator
names, so a token lifted from one site's page does not stream from
another's, and it is in place before anything ambient arrives. A
request with no `Origin` at all is allowed: browsers send one on every
WebSocket upgrade and no page can remove it, so its absence means a
program (an SDK, a backend, a script), which proves itself by its key
alone; refusing it would stop no hijack. By default the list holds the
service's own origins, where its page `/` is served.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ch04_streaming.stream_hooks import Refusal

DEFAULT_PORTS = {"http": 80, "https": 443}
# Hosts that mean "this machine", and the names a browser on it uses.
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
THIS_MACHINE = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "::", ""}


class OriginError(ValueError):
    """A configured origin is not `scheme://host[:port]`."""


def origin_of(text: str) -> str:
    """`text` as a browser writes an origin: lower case, no path, no
    default port. Raises OriginError for anything else."""
    parts = urlsplit(text.strip().lower())
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise OriginError(f"{text!r}: an origin is http(s)://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment \
            or parts.username or parts.password:
        raise OriginError(f"{text!r}: an origin has no path or query")
    try:
        port = parts.port
    except ValueError as error:
        raise OriginError(f"{text!r}: not an origin: {error}") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else (
        parts.hostname)
    if port is None or port == DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def parse_origins(text: str) -> frozenset[str]:
    """A comma-separated list, as `ALLOWED_ORIGINS` holds it."""
    return frozenset(origin_of(o) for o in text.split(",") if o.strip())


def own_origins(host: str, port: int) -> frozenset[str]:
    """Where this service's own page is served from: its host and port,
    by either scheme; on this machine, by each name a browser uses."""
    names: Iterable[str] = (LOOPBACK if host in THIS_MACHINE
                            else (f"[{host}]" if ":" in host else host,))
    return frozenset(origin_of(f"{scheme}://{name}:{port}")
                     for scheme in DEFAULT_PORTS for name in names)


@dataclass(frozen=True)
class OriginAllowlist:
    allowed: frozenset[str] = field(default_factory=frozenset)

    def check(self, origin: str | None) -> Refusal | None:
        """None lets the upgrade go on: no `Origin` (not a browser), or
        one listed. Browsers write origins in lower case."""
        if origin is None or origin.lower() in self.allowed:
            return None
        shown = origin if len(origin) <= 80 else origin[:80] + "..."
        return Refusal(403, f"origin {shown} is not allowed to open"
                       " streams")

"""Network endpoints in config: ``host:port``, ``[v6]:port``; an empty host means every interface."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

_HOST_RE = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})$")


def parse_endpoint(endpoint: str, example: str = "0.0.0.0:4317") -> tuple[str, int]:
    """Split ``host:port`` into ``(host, port)``; an empty host becomes ``0.0.0.0``. ValueError if malformed."""
    hint = f"must be host:port (e.g. {example})"
    if not isinstance(endpoint, str) or ":" not in endpoint:
        raise ValueError(f"{hint}, got {endpoint!r}")
    host, _, port_text = endpoint.strip().rpartition(":")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"{hint}, got {endpoint!r}")
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{hint}: {host!r} is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"{hint}; write IPv6 addresses in brackets like [::1]:4317, got {endpoint!r}")
    elif host and not _HOST_RE.match(host):
        raise ValueError(f"{hint}: invalid host {host!r}")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"{hint}: invalid port {port_text!r} (0-65535)")
    return host or "0.0.0.0", int(port_text)  # noqa: S104 - ":4317" is every interface, as in otelcol (asked for)


def endpoint_issues(endpoint: str, key: str = "endpoint", example: str = "0.0.0.0:4317") -> Iterator[tuple[str, str]]:
    """For a config class's ``validate()``: one issue if ``endpoint`` is malformed."""
    try:
        parse_endpoint(endpoint, example)
    except ValueError as e:
        yield (key, str(e))


def listen_address(endpoint: str, example: str = "localhost:4317") -> tuple[str, int]:
    """``(host, port)`` to bind for a server's ``endpoint``. ``localhost`` binds the IPv4 loopback, as the OTel
    Collector (Go's listener takes the first address of a name) does; an empty host binds every interface."""
    host, port = parse_endpoint(endpoint, example)
    return ("127.0.0.1" if host.lower() == "localhost" else host), port


def format_address(host: str, port: int) -> str:
    """``host:port`` as written in config (IPv6 in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

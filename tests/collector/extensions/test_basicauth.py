"""basicauth: one role per instance (as contrib), its config checks, and what a server check answers."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest

from collector.auth import Denied
from collector.component import ComponentID, Host, Kind, Settings
from collector.config import ConfigError, decode
from collector.errors import ComponentStartError
from collector.extensions.basicauth import VERIFIED_CACHE_SIZE, BasicAuth, BasicAuthConfig, factory
from collector.telemetry import Telemetry


def make(raw: dict[str, object], telemetry: Telemetry | None = None) -> BasicAuth:
    settings = Settings(ComponentID("basicauth"), Kind.EXTENSION, telemetry or Telemetry(), logging.getLogger("ba"))
    ext = factory.create(settings, decode(BasicAuthConfig, raw))
    assert isinstance(ext, BasicAuth)
    return ext


@pytest.mark.parametrize(("raw", "message"), [
    ({}, "give htpasswd (to check clients) or client_auth (to send credentials)"),
    ({"htpasswd": {"inline": "a:b"}, "client_auth": {"username": "a", "password": "b"}},
     "give htpasswd or client_auth, not both"),
    ({"htpasswd": {}}, "htpasswd: give file or inline"),
    ({"client_auth": {"username": "a:b", "password": "c"}}, "client_auth.username: must not contain ':'"),
    ({"htpasswd": {"inline": "u:$apr1$s$secretish"}},
     "htpasswd.inline: inline line 1 (user 'u'): Apache MD5 ($apr1$) entries are not supported"),
])
def test_config_errors(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        decode(BasicAuthConfig, raw)
    assert message in str(err.value)
    assert "secretish" not in str(err.value)


async def test_server_answers() -> None:
    ext = make({"htpasswd": {"inline": "alice:wonder\nbob:builder"}})
    await ext.start(Host())
    assert ext.cannot_serve("server") is None and ext.cannot_serve("client") is not None

    def basic(text: str) -> dict[str, str]:
        return {"authorization": "Basic " + base64.b64encode(text.encode()).decode()}

    assert await ext.authenticate(basic("alice:wonder")) is None
    assert await ext.authenticate(basic("alice:wonder")) is None  # remembered
    assert await ext.authenticate(basic("bob:wonder")) == Denied("invalid_credentials", "invalid username or password")
    assert (await ext.authenticate(basic("alice"))).reason == "malformed_credentials"  # type: ignore[union-attr]
    assert (await ext.authenticate({})).reason == "missing_credentials"  # type: ignore[union-attr]
    assert (await ext.authenticate({"authorization": "Digest x"})).reason == "malformed_credentials"  # type: ignore[union-attr]
    await ext.shutdown()


async def test_inline_wins_over_file(tmp_path: Path) -> None:
    path = tmp_path / ".htpasswd"
    path.write_text("alice:from-file\ncarol:carol-pass\n")
    ext = make({"htpasswd": {"file": str(path), "inline": "alice:from-inline"}})
    await ext.start(Host())
    header = "Basic " + base64.b64encode(b"alice:from-inline").decode()
    assert await ext.authenticate({"authorization": header}) is None
    header = "Basic " + base64.b64encode(b"alice:from-file").decode()
    assert await ext.authenticate({"authorization": header}) is not None
    header = "Basic " + base64.b64encode(b"carol:carol-pass").decode()
    assert await ext.authenticate({"authorization": header}) is None


async def test_bad_htpasswd_file_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / ".htpasswd"
    path.write_text("alice:$1$salt$md5crypt\n")
    ext = make({"htpasswd": {"file": str(path)}})
    with pytest.raises(ComponentStartError) as err:
        await ext.start(Host())
    assert f"{path} line 1 (user 'alice'): MD5-crypt ($1$) entries are not supported" in str(err.value)
    missing = make({"htpasswd": {"file": str(tmp_path / "nope")}})
    with pytest.raises(ComponentStartError, match="htpasswd: "):
        await missing.start(Host())


def test_client_header() -> None:
    ext = make({"client_auth": {"username": "agent", "password": "p@ss"}})
    assert ext.client_headers() == {"Authorization": "Basic " + base64.b64encode(b"agent:p@ss").decode()}
    assert ext.cannot_serve("client") is None and "no htpasswd" in (ext.cannot_serve("server") or "")


async def test_verified_cache_is_bounded_and_shown() -> None:
    size = VERIFIED_CACHE_SIZE + 5
    telemetry = Telemetry()
    ext = make({"htpasswd": {"inline": "\n".join(f"u{i}:p{i}" for i in range(size))}}, telemetry)
    await ext.start(Host())

    def cached() -> float | None:
        return telemetry.registry.get_sample_value("tracetriage_auth_basic_verified_cache_entries",
                                                   {"extension": "basicauth"})

    for i in range(size):
        header = "Basic " + base64.b64encode(f"u{i}:p{i}".encode()).decode()
        assert await ext.authenticate({"authorization": header}) is None
    assert cached() == VERIFIED_CACHE_SIZE
    await ext.shutdown()
    assert cached() == 0

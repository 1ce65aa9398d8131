"""bearertokenauth: its config checks (as contrib), the checks of a header, the token file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from collector.auth import ClientAuthenticator, Denied, ServerAuthenticator
from collector.component import ComponentID, Host, Kind, Settings
from collector.config import ConfigError, decode
from collector.errors import ComponentStartError
from collector.extensions.bearertokenauth import BearerTokenAuth, BearerTokenAuthConfig, factory, read_tokens
from collector.telemetry import Telemetry


def make(raw: dict[str, object]) -> BearerTokenAuth:
    settings = Settings(ComponentID("bearertokenauth"), Kind.EXTENSION, Telemetry(), logging.getLogger("bta"))
    ext = factory.create(settings, decode(BearerTokenAuthConfig, raw))
    assert isinstance(ext, BearerTokenAuth)
    return ext


@pytest.mark.parametrize(("raw", "message"), [
    ({}, "no bearer token provided: give token, tokens or filename"),
    ({"token": "a", "tokens": ["b"]}, "tokens: either tokens or token should be provided, not both"),
    ({"tokens": ["a", ""]}, "tokens[1]: must not be empty"),
    ({"token": "a", "header": "X Bad"}, "header: must be an HTTP header name"),
    ({"token": "a", "scheme": "Two words"}, "scheme: must be one word"),
])
def test_config_errors(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        decode(BearerTokenAuthConfig, raw)
    assert message in str(err.value)


def test_token_is_opaque_in_printouts() -> None:
    config = decode(BearerTokenAuthConfig, {"token": "very-secret", "tokens": []})
    assert "very-secret" not in repr(config) and "very-secret" not in str(config)
    with pytest.raises(ConfigError) as err:
        decode(BearerTokenAuthConfig, {"token": "very-secret", "tokens": ["other-secret"]})
    assert "secret" not in str(err.value)


async def test_server_and_client_roles() -> None:
    ext = make({"tokens": ["one", "two"]})
    assert isinstance(ext, ServerAuthenticator) and isinstance(ext, ClientAuthenticator)
    assert await ext.authenticate({"authorization": "Bearer two"}) is None
    assert await ext.authenticate({"authorization": "  Bearer one "}) is None
    assert await ext.authenticate({}) == Denied("missing_credentials", "missing or empty Authorization header")
    denied = await ext.authenticate({"authorization": "Bearer three"})
    assert denied is not None and denied.reason == "invalid_credentials" and "three" not in denied.message
    assert await ext.authenticate({"authorization": "Basic two"}) is not None
    assert ext.client_headers() == {"Authorization": "Bearer one"}  # the first token is sent
    assert ext.challenge == 'Bearer realm="tracetriage"'


def test_read_tokens(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_text(" a \n\n b\n")
    assert read_tokens(str(path)) == ["a", "b"]
    path.write_text("\n \n")
    with pytest.raises(ValueError, match="holds no token"):
        read_tokens(str(path))


async def test_unreadable_token_file_stops_the_start(tmp_path: Path) -> None:
    ext = make({"filename": str(tmp_path / "missing.token")})
    with pytest.raises(ComponentStartError, match="cannot read the token file"):
        await ext.start(Host())
    await ext.shutdown()

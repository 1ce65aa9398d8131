"""Secrets in config: Opaque values and secret URLs print as [REDACTED] everywhere (str, repr, format,
logging, config errors) and give their value only through reveal()."""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass

import pytest

from collector.config import (
    NO_SECRET,
    REDACTED,
    ConfigError,
    Opaque,
    SecretPathURL,
    SecretURL,
    decode,
    field,
    redact_url,
    scrub,
)
from collector.config.schema import Expanded


def test_opaque_prints_redacted_and_reveals_on_request(caplog: pytest.LogCaptureFixture) -> None:
    secret = Opaque("s3cr3t-value")
    assert str(secret) == repr(secret) == f"{secret}" == f"{secret!r}" == "%s" % secret == REDACTED  # noqa: UP031
    assert f"{secret:>12}" == f"{REDACTED:>12}"
    assert str([secret]) == f"[{REDACTED}]" and str({"k": secret}) == f"{{'k': {REDACTED}}}"
    with caplog.at_level(logging.INFO):
        logging.getLogger("test.opaque").info("token %s / %r", secret, secret)
    assert "s3cr3t-value" not in caplog.text and REDACTED in caplog.text
    assert secret.reveal() == "s3cr3t-value"
    assert secret == "s3cr3t-value" and secret == Opaque("s3cr3t-value") and secret != Opaque("other")
    assert hash(secret) == hash(Opaque("s3cr3t-value"))
    assert bool(secret) and not NO_SECRET and len(secret) == len("s3cr3t-value")
    assert pickle.loads(pickle.dumps(secret)).reveal() == "s3cr3t-value"


def test_opaque_is_not_a_str() -> None:
    with pytest.raises(TypeError):
        Opaque(123)  # type: ignore[arg-type]
    assert not isinstance(Opaque("x"), str)  # forgetting reveal() fails loudly instead of leaking


@pytest.mark.parametrize(("url", "plain", "path_hidden"), [
    ("https://user:pw@hooks.example:8443/v1/abc?token=t#f", "https://user:[REDACTED]@hooks.example:8443/v1/abc?token=t#f",
     "https://user:[REDACTED]@hooks.example:8443/[REDACTED]"),
    ("https://hooks.slack.com/services/T0/B0/XXXX", "https://hooks.slack.com/services/T0/B0/XXXX",
     "https://hooks.slack.com/[REDACTED]"),
    ("http://user@h/", "http://user@h/", "http://user@h/[REDACTED]"),
    ("http://h:80", "http://h:80", "http://h:80"),
    ("http://[::1]:9/x", "http://[::1]:9/x", "http://[::1]:9/[REDACTED]"),
    ("not a url with a token", REDACTED, REDACTED),
    ("http://h:notaport/x", REDACTED, REDACTED),
])
def test_redact_url(url: str, plain: str, path_hidden: str) -> None:
    assert redact_url(url) == plain
    assert redact_url(url, path=True) == path_hidden
    assert str(SecretURL(url)) == plain and str(SecretPathURL(url)) == path_hidden
    assert SecretPathURL(url).reveal() == url


def test_scrub_removes_secrets_and_url_parts() -> None:
    url = SecretPathURL("https://bot:pa55word@hooks.example/services/T0/B0/tok3n-abcdefghijkl")
    text = ("cannot POST https://bot:pa55word@hooks.example/services/T0/B0/tok3n-abcdefghijkl: "
            "'Authorization': 'Bearer abc.def', path /services/T0/B0/tok3n-abcdefghijkl, token tok3n-abcdefghijkl")
    out = scrub(text, [url, Opaque("Bearer abc.def"), Opaque("")])
    for piece in ("pa55word", "tok3n-abcdefghijkl", "abc.def"):
        assert piece not in out
    assert out.startswith("cannot POST [REDACTED]")


@dataclass(frozen=True)
class _Secrets:
    required: Opaque = field(min_len=1)
    token: Opaque = NO_SECRET
    headers: dict[str, Opaque] = field(default_factory=dict)
    url: SecretPathURL | None = None

    def validate(self) -> list[tuple[str, str]]:
        if self.url is not None and not self.url.reveal().startswith("https://"):
            return [("url", f"must be https, got {self.url!r}")]
        return []


def test_decoder_builds_opaque_values() -> None:
    cfg = decode(_Secrets, {"token": "t0k", "required": 12345, "headers": {"X-Api-Key": "k3y"},
                            "url": "https://u:p@h/x"})
    assert isinstance(cfg.token, Opaque) and cfg.token.reveal() == "t0k"
    assert cfg.required.reveal() == "12345"  # a number written unquoted is read as its text
    assert isinstance(cfg.headers["X-Api-Key"], Opaque) and cfg.headers["X-Api-Key"].reveal() == "k3y"
    assert isinstance(cfg.url, SecretPathURL)
    assert "t0k" not in repr(cfg) and "k3y" not in repr(cfg) and ":p@" not in repr(cfg)
    # ${env:KEY} expanding to digits keeps its text (leading zeros and all), as a string option does.
    env = decode(_Secrets, {"required": Expanded("000123", 123)})
    assert env.required.reveal() == "000123"


def test_config_errors_never_echo_a_secret() -> None:
    with pytest.raises(ConfigError) as info:
        decode(_Secrets, {"token": True, "required": "", "headers": {"Authorization": ["Bearer leaked-1"]},
                          "url": "http://user:leaked-2@h/leaked-3-path"}, "exporters.x")
    text = str(info.value)
    assert "exporters.x.token: must be a string" in text
    assert "exporters.x.required: must not be empty" in text
    assert "exporters.x.headers.Authorization: must be a string, got a list" in text
    assert "exporters.x.url: must be https, got http://user:[REDACTED]@h/[REDACTED]" in text
    for leaked in ("True", "leaked-1", "leaked-2", "leaked-3"):
        assert leaked not in text

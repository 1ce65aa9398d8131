"""Kafka client settings: the top-level ``tls``, contrib's older ``auth.tls`` and ``auth.plain_text``, and
configtls's ``include_system_ca_certs_pool``."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from collector.config import ConfigError, Opaque, decode
from collector.exporters.kafka.config import KafkaExporterConfig
from collector.kafka_common import KafkaClientConfig, client_kwargs
from collector.receivers.kafka.config import KafkaReceiverConfig


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> str:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI")
    d = tmp_path_factory.mktemp("ca")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca"],
                   cwd=d, check=True, capture_output=True)
    return str(d / "ca.pem")


def test_top_level_tls_with_sasl(ca: str) -> None:
    cfg = decode(KafkaExporterConfig, {"brokers": ["k:9093"], "tls": {"ca_file": ca},
                                       "auth": {"sasl": {"mechanism": "SCRAM-SHA-512", "username": "u",
                                                         "password": "p"}}})
    kwargs = client_kwargs(cfg)
    assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)


def test_older_auth_tls_and_plain_text(ca: str) -> None:
    cfg = decode(KafkaReceiverConfig, {"auth": {"tls": {"ca_file": ca}, "plain_text": {"username": "u",
                                                                                       "password": "p"}}})
    kwargs = client_kwargs(cfg)
    assert kwargs["security_protocol"] == "SASL_SSL"
    sasl = (kwargs["sasl_mechanism"], kwargs["sasl_plain_username"], kwargs["sasl_plain_password"])
    assert sasl == ("PLAIN", "u", "p")
    # the top-level tls wins over auth.tls
    plain = decode(KafkaReceiverConfig, {"tls": {"insecure": True}, "auth": {"tls": {"ca_file": ca}}})
    assert client_kwargs(plain)["security_protocol"] == "PLAINTEXT"


def test_refusals() -> None:
    with pytest.raises(ConfigError) as info:
        decode(KafkaReceiverConfig, {"auth": {"kerberos": {}, "sasl": {"username": "u", "password": "p"},
                                              "plain_text": {"username": "u"}},
                                     "metadata": {"full": False}, "tls": {"ca_pem": "x"}}, "receivers.kafka")
    text = str(info.value)
    for expected in ("receivers.kafka.auth.kerberos: an OTel Collector option that tracetriage does not implement",
                     "receivers.kafka.metadata: an OTel Collector option that tracetriage does not implement",
                     "receivers.kafka.tls.ca_pem: an OTel Collector option that tracetriage does not implement; "
                     "use ca_file",
                     "receivers.kafka.auth.plain_text: give sasl or plain_text, not both"):
        assert expected in text, text


def test_include_system_ca_certs_pool(ca: str) -> None:
    only = decode(KafkaReceiverConfig, {"tls": {"ca_file": ca}}).tls
    both = decode(KafkaReceiverConfig, {"tls": {"ca_file": ca, "include_system_ca_certs_pool": True}}).tls
    assert only is not None and both is not None
    only_ctx, both_ctx = only.ssl_context(), both.ssl_context()
    assert only_ctx is not None and both_ctx is not None
    assert only_ctx.cert_store_stats()["x509_ca"] == 1  # the configured CA and nothing else, as configtls
    assert only_ctx.verify_mode == ssl.CERT_REQUIRED and only_ctx.check_hostname
    system = ssl.get_default_verify_paths()
    if system.cafile and Path(system.cafile).is_file():
        assert both_ctx.cert_store_stats()["x509_ca"] > 1


def test_sasl_password_is_opaque_and_revealed_to_the_client() -> None:
    cfg = decode(KafkaClientConfig, {"auth": {"sasl": {"mechanism": "PLAIN", "username": "u", "password": "k-pass-1"}}})
    assert cfg.auth.sasl is not None and isinstance(cfg.auth.sasl.password, Opaque)
    assert "k-pass-1" not in repr(cfg)
    assert client_kwargs(cfg)["sasl_plain_password"] == "k-pass-1"
    older = decode(KafkaClientConfig, {"auth": {"plain_text": {"username": "u", "password": "k-pass-2"}}})
    assert client_kwargs(older)["sasl_plain_password"] == "k-pass-2" and "k-pass-2" not in repr(older)

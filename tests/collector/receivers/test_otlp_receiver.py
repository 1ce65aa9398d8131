"""The otlp receiver's config, factory and lifecycle: ports in use, TLS, shutdown."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import aiohttp
import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from collector.component import Host, Kind
from collector.config import ConfigError, decode
from collector.config.tls import TLSServerConfig
from collector.errors import ComponentStartError
from collector.receivers.otlp import GRPCConfig, OTLPReceiver, OTLPReceiverConfig, factory
from tests.collector.receivers.test_otlp_support import (
    TRACE_EXPORT,
    RecordingConsumer,
    make_request,
    make_settings,
    receiver_config,
    running,
    self_signed_cert,
)


def config_errors(value: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        decode(OTLPReceiverConfig, value, "receivers.otlp")
    return [str(i) for i in info.value.issues]


# --- config ---------------------------------------------------------------------------------------


def test_factory() -> None:
    assert factory.type == "otlp" and factory.kind is Kind.RECEIVER
    assert factory.config_class is OTLPReceiverConfig


def test_defaults_match_otel_collector() -> None:
    cfg = decode(OTLPReceiverConfig, {"protocols": {"grpc": None, "http": None}})
    grpc_cfg, http_cfg = cfg.protocols.grpc, cfg.protocols.http
    assert grpc_cfg == GRPCConfig(endpoint="localhost:4317", max_recv_msg_size_mib=4, tls=None)
    assert http_cfg is not None
    assert http_cfg.endpoint == "localhost:4318"
    assert http_cfg.max_request_body_size == 20 * 1024 * 1024
    assert http_cfg.traces_url_path == "/v1/traces" and http_cfg.tls is None


def test_absent_protocol_not_enabled() -> None:
    cfg = decode(OTLPReceiverConfig, {"protocols": {"http": {"max_request_body_size": "4MiB"}}})
    assert cfg.protocols.grpc is None
    assert cfg.protocols.http is not None
    assert cfg.protocols.http.max_request_body_size == 4 * 1024 * 1024


def test_tls_config() -> None:
    cfg = decode(OTLPReceiverConfig, {"protocols": {"grpc": {"tls": {"cert_file": "c.pem", "key_file": "k.pem"}}}})
    assert cfg.protocols.grpc is not None
    assert cfg.protocols.grpc.tls == TLSServerConfig(cert_file="c.pem", key_file="k.pem")


@pytest.mark.parametrize("value", [{}, None, {"protocols": {}}, {"protocols": None}])
def test_no_protocol_is_an_error(value: object) -> None:
    assert config_errors(value) == ["receivers.otlp.protocols: must enable at least one protocol: grpc, http"]


@pytest.mark.parametrize(("endpoint", "needle"), [
    ("localhost", "must be host:port"),
    ("localhost:http", "invalid port 'http'"),
    ("localhost:70000", "invalid port '70000'"),
    ("::1:4317", "IPv6 addresses in brackets"),
    ("bad host:4317", "invalid host"),
])
def test_bad_endpoint(endpoint: str, needle: str) -> None:
    (err,) = config_errors({"protocols": {"grpc": {"endpoint": endpoint}}})
    assert err.startswith("receivers.otlp.protocols.grpc.endpoint: ") and needle in err
    (err,) = config_errors({"protocols": {"http": {"endpoint": endpoint}}})
    assert err.startswith("receivers.otlp.protocols.http.endpoint: ")


@pytest.mark.parametrize("endpoint", ["0.0.0.0:4317", "localhost:0", ":4317", "[::1]:4317", "my-host.internal:1"])
def test_good_endpoint(endpoint: str) -> None:
    decode(OTLPReceiverConfig, {"protocols": {"grpc": {"endpoint": endpoint}}})


def test_unknown_keys_and_bad_values_all_reported() -> None:
    errs = config_errors({"protocols": {
        "htttp": {},
        "grpc": {"endpoint": "x", "max_recv_msg_size_mib": 0, "transprt": "tcp"},
        "http": {"max_request_body_size": "lots", "tls": {"cert_file": "c.pem"}},
    }})
    assert "receivers.otlp.protocols.htttp: unknown key (valid keys: grpc, http)" in errs
    assert any(e.startswith("receivers.otlp.protocols.grpc.endpoint: must be host:port") for e in errs)
    assert any(e.startswith("receivers.otlp.protocols.grpc.max_recv_msg_size_mib: must be >= 1") for e in errs)
    assert any(e.startswith("receivers.otlp.protocols.grpc.transprt: unknown key") for e in errs)
    assert any(e.startswith("receivers.otlp.protocols.http.max_request_body_size: invalid size") for e in errs)
    assert "receivers.otlp.protocols.http.tls: cert_file and key_file must be given together" in errs


def test_protocol_must_be_a_mapping() -> None:
    errs = config_errors({"protocols": {"grpc": "yes"}})
    assert errs == ["receivers.otlp.protocols.grpc: must be a mapping, got str 'yes'"]


# --- lifecycle ------------------------------------------------------------------------------------


async def test_shutdown_idempotent_and_safe_before_start() -> None:
    rcv = factory.create(make_settings(), receiver_config(), RecordingConsumer())
    assert isinstance(rcv, OTLPReceiver)
    await rcv.shutdown()
    await rcv.shutdown()
    await rcv.start(Host())
    assert rcv.grpc_port and rcv.http_port
    await rcv.shutdown()
    await rcv.shutdown()


async def test_only_enabled_protocols_bound() -> None:
    async with running(receiver_config(http=False)) as (rcv, _):
        assert rcv.grpc_port and rcv.http_port is None


async def test_stopped_receiver_refuses_new_requests() -> None:
    async with running() as (rcv, _):
        grpc_port, http_port = rcv.grpc_port, rcv.http_port
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.post(f"http://127.0.0.1:{http_port}/v1/traces", data=b"")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await channel.unary_unary(TRACE_EXPORT)(b"", timeout=2)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("protocol", ["grpc", "http"])
async def test_port_in_use_fails_start(protocol: str) -> None:
    async with running() as (first, _):
        port = first.grpc_port if protocol == "grpc" else first.http_port
        cfg = receiver_config(**{f"{protocol}_endpoint": f"127.0.0.1:{port}"})  # type: ignore[arg-type]
        second = factory.create(make_settings(name="2"), cfg, RecordingConsumer())
        with pytest.raises(ComponentStartError) as info:
            await second.start(Host())
        await second.shutdown()
    text = str(info.value)
    assert "receiver otlp/2" in text and f"127.0.0.1:{port}" in text and protocol in text


async def test_port_held_by_plain_socket_fails_start() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        rcv = factory.create(make_settings(), receiver_config(grpc_endpoint=f"127.0.0.1:{port}"), RecordingConsumer())
        with pytest.raises(ComponentStartError, match=str(port)):
            await rcv.start(Host())
        assert rcv.http_port is None  # nothing left running
        await rcv.shutdown()


# --- TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cert_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize("protocol", ["grpc", "http"])
async def test_unreadable_tls_file_fails_start(tmp_path: Path, cert_pair: tuple[Path, Path], protocol: str) -> None:
    tls = TLSServerConfig(cert_file=str(tmp_path / "missing.pem"), key_file=str(cert_pair[1]))
    cfg = receiver_config(grpc=protocol == "grpc", http=protocol == "http", tls=tls)
    rcv = factory.create(make_settings(), cfg, RecordingConsumer())
    with pytest.raises(ComponentStartError, match="cannot read TLS certificate"):
        await rcv.start(Host())
    await rcv.shutdown()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
async def test_bad_certificate_fails_start(tmp_path: Path, cert_pair: tuple[Path, Path], protocol: str) -> None:
    bogus = tmp_path / "bogus.pem"
    bogus.write_text("not a certificate")
    tls = TLSServerConfig(cert_file=str(bogus), key_file=str(cert_pair[1]))
    cfg = receiver_config(grpc=protocol == "grpc", http=protocol == "http", tls=tls)
    rcv = factory.create(make_settings(), cfg, RecordingConsumer())
    with pytest.raises(ComponentStartError, match="receiver otlp"):
        await rcv.start(Host())
    await rcv.shutdown()


async def test_tls_serving(cert_pair: tuple[Path, Path]) -> None:
    cert, key = cert_pair
    tls = TLSServerConfig(cert_file=str(cert), key_file=str(key))
    async with running(receiver_config(tls=tls)) as (rcv, consumer):
        client_ctx = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as session:
            async with session.post(f"https://127.0.0.1:{rcv.http_port}/v1/traces", ssl=client_ctx,
                                    data=make_request(2).SerializeToString(),
                                    headers={"Content-Type": "application/x-protobuf"}) as resp:
                assert resp.status == 200
            with pytest.raises(aiohttp.ClientError):  # plain HTTP to a TLS port
                async with session.post(f"http://127.0.0.1:{rcv.http_port}/v1/traces", data=b"") as resp:
                    await resp.read()
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        async with grpc.aio.secure_channel(f"127.0.0.1:{rcv.grpc_port}", creds) as channel:
            call = channel.unary_unary(TRACE_EXPORT, response_deserializer=ExportTraceServiceResponse.FromString)
            await asyncio.wait_for(call(make_request(3).SerializeToString(), timeout=5), 10)
    assert consumer.span_count == 5


async def test_https_alpn_offers_http11_only(cert_pair: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    """A client that prefers HTTP/2 (curl's default over HTTPS) negotiates HTTP/1.1 and gets its 200."""
    cert, key = cert_pair
    tls = TLSServerConfig(cert_file=str(cert), key_file=str(key))
    async with running(receiver_config(grpc=False, tls=tls)) as (rcv, consumer):
        client_ctx = ssl.create_default_context(cafile=str(cert))
        client_ctx.set_alpn_protocols(["h2", "http/1.1"])
        _, writer = await asyncio.open_connection("127.0.0.1", rcv.http_port, ssl=client_ctx,
                                                  server_hostname="localhost")
        ssl_object = writer.get_extra_info("ssl_object")
        assert ssl_object.selected_alpn_protocol() == "http/1.1"
        writer.close()
        await writer.wait_closed()
        body = make_request(2).SerializeToString()
        for flags in ([], ["--http2"]):  # curl's default, then h2 asked for explicitly
            proc = await asyncio.create_subprocess_exec(
                "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", *flags,
                "--cacert", str(cert), "-H", "Content-Type: application/x-protobuf", "--data-binary", "@-",
                f"https://localhost:{rcv.http_port}/v1/traces",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(body), 30)
            assert out.decode() == "200 1.1", (flags, out, err)
    assert consumer.span_count == 4
    assert not [r for r in caplog.records if r.exc_info]

"""What a collector listens on when its config names no address: the listening sockets of the real process,
read from /proc (its socket inodes in /proc/PID/fd, their addresses in /proc/net/tcp and tcp6). Everything
is on loopback, on the upstream default ports: OTLP gRPC 4317, OTLP HTTP 4318, health_check 13133, /metrics
8888. Those ports are fixed, so the test is skipped (saying which port) when something on this machine
already listens on one of them."""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import sys
from pathlib import Path

import pytest

from tests.conftest import CollectorProcess

DEFAULT_PORTS = {4317, 4318, 13133, 8888}
LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column
CONFIG = """\
receivers:
  otlp:
    protocols: {grpc: {}, http: {}}
exporters:
  debug: {}
extensions:
  health_check: {}
service:
  extensions: [health_check]
  pipelines:
    traces: {receivers: [otlp], exporters: [debug]}
"""


def _address(hex_address: str) -> tuple[str, int]:
    """An address of /proc/net/tcp{,6} ("0100007F:10DD": the IP in 32-bit host-order words, the port)."""
    ip_hex, port_hex = hex_address.split(":")
    raw = bytes.fromhex(ip_hex)
    words = b"".join(struct.pack("=I", struct.unpack(">I", raw[i:i + 4])[0]) for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(words)), int(port_hex, 16)


def listening() -> dict[int, tuple[str, int]]:
    """Every listening TCP socket of this network namespace: inode -> (address, port)."""
    found: dict[int, tuple[str, int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] == LISTEN:
                    found[int(fields[9])] = _address(fields[1])
    return found


def loopback(ip: str) -> bool:
    """127.0.0.0/8 or ::1, also as an IPv4-mapped IPv6 address (::ffff:127.0.0.1: how gRPC binds "localhost")."""
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def sockets_of(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def test_address_reading() -> None:
    """The /proc decoding, on sockets this test opens itself."""
    with socket.socket() as s4, socket.socket(socket.AF_INET6) as s6:
        s4.bind(("127.0.0.1", 0))
        s4.listen()
        s6.bind(("::1", 0))
        s6.listen()
        mine = {listening()[i] for i in sockets_of(os.getpid()) if i in listening()}
        assert ("127.0.0.1", s4.getsockname()[1]) in mine
        assert ("::1", s6.getsockname()[1]) in mine
    assert loopback("127.0.0.1") and loopback("::1") and loopback("::ffff:127.0.0.1")
    assert not loopback("0.0.0.0") and not loopback("::") and not loopback("::ffff:10.1.2.3")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")
def test_no_endpoints_means_loopback_on_the_default_ports(tmp_path: Path,
                                                          collector_factory: type[CollectorProcess]) -> None:
    taken = sorted({port for _, port in listening().values()} & DEFAULT_PORTS)
    if taken:
        pytest.skip(f"port(s) {taken} already in use on this machine: this test needs the fixed default ports")
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    collector = collector_factory([config], metrics_port=8888)
    try:
        collector.wait_ready()
    except AssertionError:
        if "in use" in collector.stderr.lower():
            pytest.skip(f"a default port was taken while the collector started:\n{collector.stderr[-500:]}")
        raise
    table = listening()
    ours = {table[i] for i in sockets_of(collector.proc.pid) if i in table}
    assert {port for _, port in ours} == DEFAULT_PORTS, ours
    public = {(ip, port) for ip, port in ours if not loopback(ip)}
    assert not public, f"listening beyond loopback: {public}"
    assert "# TYPE" in collector.metrics()  # /metrics answers on 127.0.0.1:8888
    assert collector.terminate() == 0

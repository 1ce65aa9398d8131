"""The file exporter: proto and JSON round trips, append/truncate, flush, start errors."""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.component import Host, Settings
from collector.config import ConfigError, decode
from collector.errors import ComponentStartError, ConsumerError, RefusedError
from collector.exporters import file
from collector.otlpjson import decode_request
from tests.collector.exporters import make_batch, make_settings, metric

HAS_DEV_FULL = os.path.exists("/dev/full")


def create(config: dict[str, object]) -> tuple[file.FileExporter, Settings]:
    settings = make_settings("file")
    return file.factory.create(settings, decode(file.FileConfig, config)), settings


def read_proto_records(path: Path) -> list[ExportTraceServiceRequest]:
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos:pos + 4])
        out.append(ExportTraceServiceRequest.FromString(data[pos + 4:pos + 4 + size]))
        pos += 4 + size
    assert pos == len(data)
    return out


async def test_proto_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "spans.pb"
    exporter, settings = create({"path": str(path), "format": "proto"})
    await exporter.start(Host())
    batches = [make_batch(3, seed=1), make_batch(2, seed=2)]
    for b in batches:
        await exporter.consume_traces(b)
    await exporter.shutdown()
    await exporter.shutdown()
    records = read_proto_records(path)
    assert [r.SerializeToString() for r in records] == [b.to_bytes() for b in batches]
    assert metric(settings, "otelcol_exporter_sent_spans") == 5


async def test_json_round_trip_and_append(tmp_path: Path) -> None:
    path = tmp_path / "spans.json"
    path.write_text("old line\n")
    exporter, _ = create({"path": str(path), "append": True, "flush_interval": "10ms"})
    await exporter.start(Host())
    batch = make_batch(3)
    await exporter.consume_traces(batch)
    await exporter.shutdown()
    lines = path.read_bytes().splitlines()
    assert lines[0] == b"old line"
    assert len(lines) == 2
    assert decode_request(lines[1]) == batch.request
    assert b'"traceId":"' + b"01" * 16 + b'"' in lines[1]


async def test_truncates_by_default_and_flushes_per_write(tmp_path: Path) -> None:
    path = tmp_path / "spans.json"
    path.write_text("stale\n" * 100)
    exporter, _ = create({"path": str(path), "flush_interval": 0})
    await exporter.start(Host())
    await exporter.consume_traces(make_batch(1))
    # flushed at once with flush_interval 0: visible before shutdown
    assert len(path.read_bytes().splitlines()) == 1
    await exporter.shutdown()


async def test_unwritable_path_fails_start(tmp_path: Path) -> None:
    exporter, _ = create({"path": str(tmp_path / "missing" / "dir" / "spans.json")})
    with pytest.raises(ComponentStartError) as info:
        await exporter.start(Host())
    assert "missing/dir/spans.json" in str(info.value)
    assert "No such file or directory" in str(info.value)
    await exporter.shutdown()

    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        exporter, _ = create({"path": str(locked / "spans.json")})
        with pytest.raises(ComponentStartError, match="Permission denied"):
            await exporter.start(Host())
        await exporter.shutdown()


@pytest.mark.skipif(not HAS_DEV_FULL, reason="needs /dev/full")
async def test_write_error_reaches_caller(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    exporter, settings = create({"path": "/dev/full", "format": "proto", "flush_interval": 0})
    await exporter.start(Host())
    with caplog.at_level(logging.ERROR), pytest.raises(ConsumerError) as info:
        await exporter.consume_traces(make_batch(2))
    assert info.value.retriable
    assert "cannot write its output" in str(info.value) and "/dev/full" not in str(info.value)  # no path to clients
    assert "/dev/full" in caplog.text and "No space left" in caplog.text  # the operator's log has it
    assert metric(settings, "otelcol_exporter_send_failed_spans") == 2
    await exporter.shutdown()


async def test_refuses_after_shutdown(tmp_path: Path) -> None:
    exporter, _ = create({"path": str(tmp_path / "x.pb"), "format": "proto", "sending_queue": {"enabled": True}})
    await exporter.start(Host())
    await exporter.consume_traces(make_batch(1))
    await exporter.shutdown()
    with pytest.raises(RefusedError):
        await exporter.consume_traces(make_batch(1))
    assert len(read_proto_records(tmp_path / "x.pb")) == 1


def test_config() -> None:
    cfg = decode(file.FileConfig, {"path": "/tmp/x"})
    assert (cfg.format, cfg.append, cfg.flush_interval, cfg.sending_queue.enabled) == ("json", False, 1.0, False)
    with pytest.raises(ConfigError) as info:
        decode(file.FileConfig, {"format": "xml", "group_by": {}}, "exporters.file")
    text = str(info.value)
    assert "exporters.file.path: is required" in text
    assert "exporters.file.format: must be one of" in text
    assert "exporters.file.group_by: an OTel Collector option that tracetriage does not implement" in text


async def test_symlink_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    link = tmp_path / "spans.json"
    link.symlink_to(target)
    for extra in ({}, {"rotation": {"max_megabytes": 1}}, {"append": True}):
        exporter, _ = create({"path": str(link), **extra})
        with pytest.raises(ComponentStartError, match="is a symbolic link: not followed unless follow_symlinks"):
            await exporter.start(Host())
        await exporter.shutdown()
    assert target.read_text() == "keep me\n"
    # A dangling link is not followed either: nothing is created at its target.
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "elsewhere.json")
    exporter, _ = create({"path": str(dangling)})
    with pytest.raises(ComponentStartError, match="symbolic link"):
        await exporter.start(Host())
    assert not (tmp_path / "elsewhere.json").exists()


async def test_follow_symlinks_writes_through_the_link(tmp_path: Path) -> None:
    target = tmp_path / "real.pb"
    target.write_bytes(b"old")
    link = tmp_path / "spans.pb"
    link.symlink_to(target)
    exporter, _ = create({"path": str(link), "format": "proto", "follow_symlinks": True})
    await exporter.start(Host())
    batch = make_batch(2)
    await exporter.consume_traces(batch)
    await exporter.shutdown()
    assert link.is_symlink()
    assert [r.SerializeToString() for r in read_proto_records(target)] == [batch.to_bytes()]


async def test_a_failed_start_truncates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "spans.json"
    path.write_text("yesterday's spans\n")
    # Start fails after the file is open: the queue's storage extension does not exist.
    exporter, _ = create({"path": str(path), "sending_queue": {"enabled": True, "storage": "file_storage"}})
    with pytest.raises(ComponentStartError, match="file_storage"):
        await exporter.start(Host())
    await exporter.shutdown()
    assert path.read_text() == "yesterday's spans\n"
    # A start that succeeds keeps the old content until the first record (another component may still fail).
    exporter, _ = create({"path": str(path), "flush_interval": 0})
    await exporter.start(Host())
    assert path.read_text() == "yesterday's spans\n"
    batch = make_batch(1)
    await exporter.consume_traces(batch)
    await exporter.consume_traces(batch)
    await exporter.shutdown()
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2 and all(decode_request(line) == batch.request for line in lines)


async def test_files_are_created_0600_or_file_mode(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # the mode is exact, whatever the umask
    try:
        default = tmp_path / "default.json"
        exporter, _ = create({"path": str(default)})
        await exporter.start(Host())
        await exporter.shutdown()
        assert default.stat().st_mode & 0o777 == 0o600
        custom = tmp_path / "custom.json"
        exporter, _ = create({"path": str(custom), "file_mode": "0640"})
        await exporter.start(Host())
        await exporter.shutdown()
        assert custom.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old_umask)
    # An existing file keeps its mode.
    existing = tmp_path / "existing.json"
    existing.write_text("")
    existing.chmod(0o644)
    exporter, _ = create({"path": str(existing)})
    await exporter.start(Host())
    await exporter.shutdown()
    assert existing.stat().st_mode & 0o777 == 0o644


def test_file_mode_must_be_octal() -> None:
    assert decode(file.FileConfig, {"path": "/tmp/x", "file_mode": "640"}).mode == 0o640
    for bad in ("0999", "rw-r-----", "06400", "0o600"):
        with pytest.raises(ConfigError, match=r"exporters.file.file_mode: must be octal permission bits"):
            decode(file.FileConfig, {"path": "/tmp/x", "file_mode": bad}, "exporters.file")

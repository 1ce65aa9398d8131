"""The file exporter's ``rotation``: files capped in size, records never split, backups named with their
time and pruned by count and age, as contrib's file exporter (lumberjack) does."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.component import Host
from collector.config import ConfigError, decode
from collector.exporters import file
from collector.exporters.file_rotation import MIB, RotatingFile, RotationConfig
from tests.collector.exporters import make_batch, make_settings
from tests.collector.exporters.test_file import read_proto_records

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def test_rotates_before_the_cap_and_names_backups_by_time(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    clock = Clock()
    out = RotatingFile(str(path), RotationConfig(max_megabytes=1), clock)
    record = b"x" * (300 * 1024 - 1) + b"\n"
    for _ in range(4):
        out.write(record)
    out.close()
    backups = sorted(p.name for p in tmp_path.iterdir() if p != path)
    assert backups == ["spans-2027-01-15T08-00-00.000.jsonl"]
    assert (tmp_path / backups[0]).stat().st_size == 3 * len(record)  # the fourth would pass 1 MiB
    assert path.stat().st_size == len(record)


def test_a_record_larger_than_the_cap_gets_a_file_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "big.pb"
    out = RotatingFile(str(path), RotationConfig(max_megabytes=1), Clock())
    out.write(b"a")
    out.write(b"b" * (MIB + 10))
    out.write(b"c")
    out.close()
    sizes = sorted(p.stat().st_size for p in tmp_path.iterdir())
    assert sizes == [1, 1, MIB + 10]


def test_backups_pruned_by_count_and_age(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    clock = Clock()
    out = RotatingFile(str(path), RotationConfig(max_megabytes=1, max_backups=2, max_days=1), clock)
    for step in range(4):
        clock.now = T0 + step * 60
        out.rotate()
    assert [p.name for _, p in out.backups()] == ["t-2027-01-15T08-03-00.000.json", "t-2027-01-15T08-02-00.000.json"]
    clock.now = T0 + 3 * 86400
    out.rotate()  # the two older ones are now past max_days
    assert [p.name for _, p in out.backups()] == ["t-2027-01-18T08-00-00.000.json"]
    out.close()


def test_localtime_names_use_local_time(tmp_path: Path) -> None:
    out = RotatingFile(str(tmp_path / "l.json"), RotationConfig(localtime=True), Clock())
    out.rotate()
    out.close()
    (when, backup), = out.backups()
    assert re.fullmatch(r"l-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.000\.json", backup.name)
    assert when == pytest.approx(T0)


def test_an_existing_file_is_continued(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(b"old\n")
    out = RotatingFile(str(path), RotationConfig(), Clock())
    out.write(b"new\n")
    out.close()
    assert path.read_bytes() == b"old\nnew\n"


async def test_exporter_rotates_proto_records_whole(tmp_path: Path) -> None:
    path = tmp_path / "spans.pb"
    cfg = decode(file.FileConfig, {"path": str(path), "format": "proto", "flush_interval": "0s",
                                   "rotation": {"max_megabytes": 1, "max_backups": 10}})
    exporter = file.factory.create(make_settings("file"), cfg)
    await exporter.start(Host())
    batches = [make_batch(2000, seed=i) for i in range(6)]
    for b in batches:
        await exporter.consume_traces(b)
    await exporter.shutdown()
    files, records = read_rotated(path)
    assert len(files) > 1
    assert [r.SerializeToString() for r in records] == [b.to_bytes() for b in batches]
    assert all(f.stat().st_size <= MIB for f in files)


def read_rotated(path: Path) -> tuple[list[Path], list[ExportTraceServiceRequest]]:
    """The backups oldest first, then the current file, and the records they hold in that order."""
    files = sorted(path.parent.iterdir(), key=lambda p: (p == path, p.name))
    return files, [r for f in files for r in read_proto_records(f)]


def test_rotation_config_and_refusals() -> None:
    cfg = decode(file.FileConfig, {"path": "x", "rotation": None})
    assert cfg.rotation == RotationConfig(max_megabytes=100, max_days=0, max_backups=100, localtime=False)
    with pytest.raises(ConfigError, match="append and rotation enabled at the same time is not supported"):
        decode(file.FileConfig, {"path": "x", "append": True, "rotation": {}})
    with pytest.raises(ConfigError, match="compression: an OTel Collector option that tracetriage does not implement"):
        decode(file.FileConfig, {"path": "x", "compression": "zstd"})
    with pytest.raises(ConfigError, match=r"rotation.max_backups: must be >= 0"):
        decode(file.FileConfig, {"path": "x", "rotation": {"max_backups": -1}})


def test_rotated_files_get_the_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    clock = Clock()
    rf = RotatingFile(str(path), RotationConfig(max_megabytes=1), clock, mode=0o640)
    rf.write(b"x" * (MIB - 10))
    clock.now += 1
    rf.write(b"y" * 20)  # rotates: a backup and a new file
    rf.close()
    files = sorted(tmp_path.iterdir())
    assert len(files) == 2
    assert all(f.stat().st_mode & 0o777 == 0o640 for f in files)


def test_rotation_never_writes_through_a_symlink(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    clock = Clock()
    rf = RotatingFile(str(path), RotationConfig(max_megabytes=1), clock)
    rf.write(b"x" * (MIB - 10))
    os.replace(path, tmp_path / "moved")  # someone swaps a link in where the current file was
    path.symlink_to(victim)
    clock.now += 1
    rf.write(b"y" * 20)  # rotates: the link becomes the backup's name, a new regular file is created
    rf.close()
    assert victim.read_text() == "keep\n"
    assert not path.is_symlink() and path.read_bytes() == b"y" * 20
    victim.unlink()
    path.unlink()
    path.symlink_to(victim)  # a dangling link where the file should be: refused, nothing created
    with pytest.raises(OSError, match="symbolic link"):
        RotatingFile(str(path), RotationConfig(max_megabytes=1), clock)
    assert not victim.exists()

"""Every malformed config is refused through the CLI with exit code 2, a message naming the file and the
place (key path or line), no traceback, within a time and memory bound measured in the child process.

The bounds are for the command itself (the child has imported the CLI first): the YAML alias bomb is
refused in under a second and under 100 MB, as is everything else here; a config of a normal size
validates in well under a second.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from collector.config import safe_yaml
from tests.collector.config import CORPUS, ROOT, measured_cli

MAX_SECONDS = 1.0
MAX_GROWTH_MIB = 100.0

VALID = """receivers:
  otlp:
    protocols:
      grpc:
exporters:
  debug:
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [debug]}
"""


def with_pipeline(section: str) -> str:
    return VALID.replace("    traces: {receivers: [otlp], exporters: [debug]}\n", section)


def billion_laughs() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def merge_key_bomb() -> str:
    lines = ["m0: &m0 {k0: 1, k1: 1, k2: 1, k3: 1, k4: 1, k5: 1, k6: 1, k7: 1, k8: 1}"]
    lines += [f"m{i}: &m{i} [{', '.join(['{<<: *m' + str(i - 1) + '}'] * 9)}]" for i in range(1, 8)]
    return "\n".join(lines) + "\n"


def deep_block(levels: int) -> str:
    return "".join("  " * i + f"k{i}:\n" for i in range(levels)) + "  " * levels + "v: 1\n"


def oversized() -> bytes:
    line = b"# " + b"x" * 1022 + b"\n"
    return VALID.encode() + line * (safe_yaml.MAX_BYTES // len(line) + 1)


@dataclass
class Case:
    name: str
    content: Callable[[], str | bytes]
    expected: tuple[str, ...]  # fragments of stderr; the file name is checked for every case


CASES = [
    Case("null pipeline", lambda: with_pipeline("    traces:\n"),
         ("service.pipelines.traces: is empty: a pipeline needs receivers and exporters",)),
    Case("empty pipeline", lambda: with_pipeline("    traces: {}\n"),
         ("service.pipelines.traces.receivers: is required", "service.pipelines.traces.exporters: is required")),
    Case("pipeline without receivers", lambda: with_pipeline("    traces: {exporters: [debug]}\n"),
         ("service.pipelines.traces.receivers: is required",)),
    Case("pipeline with null exporters",
         lambda: with_pipeline("    traces:\n      receivers: [otlp]\n      exporters:\n"),
         ("service.pipelines.traces.exporters: must not be empty",)),
    Case("null service", lambda: VALID.split("service:")[0] + "service:\n", ("service: is required",)),
    Case("null pipelines", lambda: VALID.split("  pipelines:")[0] + "  pipelines:\n",
         ("service.pipelines: is required",)),
    Case("section that is a list", lambda: VALID.replace("exporters:\n  debug:\n", "exporters: [debug]\n"),
         ("exporters: must be a mapping",)),
    Case("empty file", lambda: "", ("service: is required",)),
    Case("scalar document", lambda: "just words\n", ("the top level must be a mapping",)),
    Case("two documents", lambda: VALID + "---\n" + VALID, ("line 10", "expected a single document")),
    Case("syntax error", lambda: VALID.replace("  debug:\n", "  debug: [\n"), ("invalid YAML at line",)),
    Case("tab indentation", lambda: VALID.replace("  debug:", "\tdebug:"), ("invalid YAML at line 6",)),
    Case("latin-1 text", lambda: (VALID + "# café\n").encode("latin-1"),
         ("line 10, column 6", "not UTF-8: byte 0xe9")),
    Case("UTF-16 without a byte-order mark", lambda: VALID.encode("utf-16-le"), ("line 1, column 2", "NUL bytes")),
    Case("UTF-32", lambda: codecs.BOM_UTF32_LE + VALID.encode("utf-32-le"), ("the file is UTF-32",)),
    Case("binary file", lambda: bytes(range(256)) * 64, ("NUL bytes",)),
    Case("100,000 levels of flow nesting", lambda: "a: " + "[" * 100_000 + "]" * 100_000 + "\n",
         ("invalid YAML at line 1", "nesting depth")),
    Case("150 levels of block nesting", lambda: deep_block(150), ("line 101", "nested more than 100 levels deep")),
    Case("billion laughs", billion_laughs,
         ("line 6", "aliases expand to more than 100,000 nodes (a YAML alias bomb?)")),
    Case("merge-key bomb", merge_key_bomb, ("aliases expand to more than 100,000 nodes",)),
    Case("alias cycle", lambda: "a: &x [1, *x]\n", ("line 1, column 11", "alias *x refers to a node that contains it")),
    Case("undefined alias", lambda: VALID + "extensions: *nope\n", ("line 10", "alias *nope is not defined")),
    Case("duplicate top-level key", lambda: VALID + "exporters: {debug: {}}\n",
         ("line 10", "duplicate key 'exporters' (first given at line 5, again at line 10)")),
    Case("duplicate nested key", lambda: VALID.replace("  debug:\n", "  debug:\n  debug: {verbosity: basic}\n"),
         ("duplicate key 'debug' (first given at line 6, again at line 7)",)),
    Case("over 10 MiB", oversized, ("the file is larger than 10 MiB",)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_malformed_config_is_refused_cleanly(tmp_path: Path, case: Case) -> None:
    path = tmp_path / "bad.yaml"
    content = case.content()
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    r = measured_cli("validate", "--config", str(path))
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "Error:" not in r.stderr, r.stderr
    assert f"{path}: " in r.stderr, r.stderr
    for fragment in case.expected:
        assert fragment in r.stderr, f"{fragment!r} not in:\n{r.stderr}"
    assert r.seconds < MAX_SECONDS, f"took {r.seconds:.2f}s"
    assert r.rss_growth_mib < MAX_GROWTH_MIB, f"grew by {r.rss_growth_mib:.0f} MiB"


def test_a_directory_is_not_a_config(tmp_path: Path) -> None:
    r = measured_cli("validate", "--config", str(tmp_path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{tmp_path}: cannot read config file: Is a directory" in r.stderr


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_byte_order_marks_are_read(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(VALID.encode(encoding))  # both codecs write the byte-order mark
    r = measured_cli("validate", "--config", str(path))
    assert r.returncode == 0, r.stderr


def test_a_config_of_normal_size_validates_in_well_under_a_second() -> None:
    for config in (ROOT / "configs" / "gateway.yaml", CORPUS / "workshop-kafka-sampler.yaml"):
        r = measured_cli("validate", "--config", str(config),
                         env={"KAFKA_BROKERS": "k:9093", "KAFKA_USERNAME": "u", "KAFKA_PASSWORD": "p",
                              "VENDOR_TEAM": "t"})
        assert r.returncode == 0, r.stderr
        assert r.seconds < 0.5, f"{config.name}: {r.seconds:.2f}s"
        assert r.rss_growth_mib < 20

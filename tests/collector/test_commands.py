"""Commands that installed packages add to ``tracetriage`` (collector/commands.py), through the real CLI with a
package installed beside it (a dist-info on PYTHONPATH, as pip would leave it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

PLUGIN = """
import argparse


class Hello:
    name = "hello"
    help = "say hello a few times"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--times", type=int, required=True)

    def run(self, args: argparse.Namespace) -> int:
        print("hello " * args.times)
        return 3


class NeedsMissing(Hello):
    name = "needy"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        import nosuchdependency  # noqa: F401


hello = Hello()
needy = NeedsMissing()
not_a_command = object()
"""

ENTRY_POINTS = """[tracetriage.commands]
hello = ttcmd:hello
needy = ttcmd:needy
ghost = nosuchpkg.commands:ghost
misnamed = ttcmd:hello
odd = ttcmd:not_a_command
validate = ttcmd:hello
"""


def _installed(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "ttcmd.py").write_text(PLUGIN)
    dist = site / "ttcmd-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ttcmd\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    return {**os.environ, "PYTHONPATH": str(site)}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "collector", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, env=env)


def test_installed_command_parses_its_options_and_runs(tmp_path: Path) -> None:
    env = _installed(tmp_path)
    r = cli("hello", "--times", "2", env=env)
    assert r.returncode == 3, r.stderr
    assert r.stdout.split() == ["hello", "hello"]
    r = cli("hello", env=env)
    assert r.returncode == 2
    assert "tracetriage hello: error: the following arguments are required: --times" in r.stderr


def test_help_lists_every_command_and_why_one_is_missing(tmp_path: Path) -> None:
    env = _installed(tmp_path)
    r = cli("--help", env=env)
    assert r.returncode == 0, r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines() if line.startswith("    ")}
    assert {"run", "validate", "components", "demo", "loadgen", "hello", "ghost"} <= set(lines)
    assert "say hello a few times" in lines["hello"]
    assert "send realistic traces" in lines["loadgen"]
    assert "not available here" in lines["ghost"] and "nosuchpkg" in r.stdout
    assert "check config files" in lines["validate"], "a package cannot replace a built-in command"
    bare = cli(env=env)  # no command at all: the same listing, exit 2
    assert bare.returncode == 2 and "say hello a few times" in bare.stdout


def test_command_that_cannot_load_says_why(tmp_path: Path) -> None:
    env = _installed(tmp_path)
    for name, reason in (("ghost", "No module named 'nosuchpkg' (its package is not installed here)"),
                         ("needy", "No module named 'nosuchdependency' (a module it needs is not installed here)"),
                         ("misnamed", "the entry point is named 'misnamed' but the command 'hello'"),
                         ("odd", "object is not a command")):
        r = cli(name, "--times", "1", env=env)
        assert r.returncode == 2, (name, r.stderr)
        assert r.stderr.startswith(f"tracetriage {name}: not available: the {name!r} command"), r.stderr
        assert "declared by ttcmd 0.1" in r.stderr and reason in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def test_builtin_commands_import_no_tool(tmp_path: Path) -> None:
    """run/validate/components never import bench; --help loads only the tools' light command module."""
    cfg = tmp_path / "ok.yaml"
    cfg.write_text("""
receivers: {otlp: {protocols: {grpc: {endpoint: "127.0.0.1:0"}}}}
exporters: {debug: {}}
service: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}
""")
    script = f"""
import contextlib, io, sys
from collector.cli import main
tools = lambda: sorted(m for m in sys.modules if m == "bench" or m.startswith("bench."))
with contextlib.redirect_stdout(io.StringIO()):
    assert main(["validate", "--config", {str(cfg)!r}]) == 0
    assert main(["components"]) == 0
assert tools() == [], tools()
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(["--help"])
assert tools() == ["bench", "bench.commands"], tools()
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=60,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr

"""Reading config files: YAML, ``${env:NAME}`` / ``${env:NAME:-default}`` substitution, merge of several files.

Later files merge over earlier ones as in otelcol: mappings merge key by key, anything else (lists
included) is replaced. Every key path remembers the file that set it, so errors can name the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from collector.config.schema import ConfigError, ConfigIssue, join

_ENV_RE = re.compile(r"\$\$|\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{([^}]*)\}")


class Provenance:
    """Which file set which key path."""

    def __init__(self) -> None:
        self._files: dict[str, str] = {}

    def record(self, value: Any, path: str, file: str) -> None:
        self._files[path] = file
        if isinstance(value, Mapping):
            for k, v in value.items():
                self.record(v, join(path, str(k)), file)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.record(v, join(path, i), file)

    def file_of(self, path: str) -> str | None:
        while True:
            if path in self._files:
                return self._files[path]
            cut = max(path.rfind("."), path.rfind("["))
            if cut <= 0:
                return self._files.get("")
            path = path[:cut]

    def attribute(self, issues: Sequence[ConfigIssue]) -> list[ConfigIssue]:
        return [ConfigIssue(i.path, i.message, i.file or self.file_of(i.path)) for i in issues]


def substitute_env(value: Any, path: str, issues: list[ConfigIssue], env: Mapping[str, str]) -> Any:
    """Replace ``${env:NAME}`` in every string. A string that is exactly one reference takes the YAML type
    of the variable's value (``${env:PORT}`` with PORT=4317 is the int 4317). ``$$`` is a literal ``$``."""
    if isinstance(value, Mapping):
        return {k: substitute_env(v, join(path, str(k)), issues, env) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, join(path, i), issues, env) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        if m.group(3) is not None:
            issues.append(ConfigIssue(path, f"unsupported reference ${{{m.group(3)}}}: use ${{env:NAME}}"))
            return m.group(0)
        name, default = m.group(1), m.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        issues.append(ConfigIssue(path, f"environment variable {name} is not set (use ${{env:{name}:-default}})"))
        return ""

    whole = _ENV_RE.fullmatch(value)
    result = _ENV_RE.sub(repl, value)
    if whole and whole.group(1):
        try:
            typed = yaml.safe_load(result) if result else ""
        except yaml.YAMLError:
            return result
        if isinstance(typed, str | int | float | bool):
            return typed
    return result


def merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base[k], v) if k in base else v
        return out
    return over


def read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError([ConfigIssue("", f"cannot read config file: {e.strerror or e}", path)]) from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError([ConfigIssue("", f"invalid YAML{where}: {problem}", path)]) from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue("", "the top level must be a mapping (receivers:, exporters:, ...)", path)])
    return data


def load(paths: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[dict[str, Any], Provenance]:
    """Read, substitute and merge ``paths`` in order. Raises ConfigError with every issue found."""
    if not paths:
        raise ConfigError([ConfigIssue("", "no config file given (use --config FILE)")])
    env = os.environ if env is None else env
    merged: dict[str, Any] = {}
    prov = Provenance()
    issues: list[ConfigIssue] = []
    for path in paths:
        try:
            data = read_file(path)
        except ConfigError as e:
            issues.extend(e.issues)
            continue
        sub_issues: list[ConfigIssue] = []
        data = substitute_env(data, "", sub_issues, env)
        issues.extend(ConfigIssue(i.path, i.message, path) for i in sub_issues)
        prov.record(data, "", path)
        merged = merge(merged, data)
    if issues:
        raise ConfigError(issues)
    return merged, prov

"""Reading config sources the way otelcol resolves them: files and config URIs, ``${...}`` substitution,
merge.

Sources (``--config``, repeatable; ``--set`` comes after them all):

* ``PATH`` or ``file:PATH``: a YAML file;
* ``env:NAME``: YAML held in an environment variable;
* ``yaml:processors::batch::timeout: 2s``: YAML given inline, ``::`` separating the keys of a path.

Each source is read with :mod:`collector.config.safe_yaml` (size, encoding, depth, alias and duplicate
key limits), and ``${env:NAME}``, ``${NAME}`` (the default scheme is ``env``) and
``${env:NAME:-default}`` are substituted in every string. An unset variable becomes an empty string and
a warning that names it, as in otelcol. Later sources merge over earlier ones: mappings key by key,
anything else (lists included) replaced; with the ``confmap.enableMergeAppendOption`` gate the component
lists of ``service`` are appended instead. Every key path remembers the source that set it, so errors can
name the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from collector.config import safe_yaml
from collector.config.features import MERGE_APPEND, FeatureGates
from collector.config.schema import ConfigError, ConfigIssue, Expanded, join

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REFERENCE = re.compile(r"\$\$|\$\{([^${}]*)\}")
_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(.*)$", re.DOTALL)
KEY_DELIMITER = "::"
SUPPORTED_SCHEMES = ("file", "env", "yaml")


class Provenance:
    """Which source set which key path."""

    def __init__(self) -> None:
        self._files: dict[str, str] = {}

    def record(self, value: Any, path: str, file: str) -> None:
        stack = [(value, path)]
        while stack:
            value, path = stack.pop()
            self._files[path] = file
            if isinstance(value, Mapping):
                stack.extend((v, join(path, str(k))) for k, v in value.items())
            elif isinstance(value, list):
                stack.extend((v, join(path, i)) for i, v in enumerate(value))

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


# -- ${...} substitution -----------------------------------------------------------------------------------

class _Substitution:
    """Substitutes references in one source, collecting errors and warnings."""

    def __init__(self, env: Mapping[str, str], source: str) -> None:
        self.env = env
        self.source = source
        self.issues: list[ConfigIssue] = []
        self.warnings: list[ConfigIssue] = []
        self._warned: set[str] = set()

    def lookup(self, ref: str, path: str) -> str | None:
        """The text a ``${ref}`` stands for; None after recording an error."""
        scheme, sep, rest = ref.partition(":")
        if not sep:
            scheme, rest = "env", ref  # ${NAME}: otelcol's default scheme is env
        if scheme != "env":
            if _ENV_NAME.match(scheme) and rest.startswith("-"):
                hint = f"a default needs the env scheme: ${{env:{scheme}:{rest}}}"
            else:
                hint = "tracetriage substitutes ${env:NAME} and ${NAME} only"
            self.issues.append(ConfigIssue(path, f"unsupported reference ${{{ref}}}: {hint}", self.source))
            return None
        name, has_default, default = rest.partition(":-")
        if not _ENV_NAME.match(name):
            self.issues.append(ConfigIssue(
                path, f"invalid environment variable name {name!r} in ${{{ref}}} (letters, digits and _, "
                      "not starting with a digit)", self.source))
            return None
        if name in self.env:
            return self.env[name]
        if has_default:
            return default
        if name not in self._warned:
            self._warned.add(name)
            self.warnings.append(ConfigIssue(
                path, f"environment variable {name} is not set; using an empty string", self.source))
        return ""

    def value(self, value: Any, path: str) -> Any:
        """``value`` with every reference replaced; the containers are rebuilt, without recursion."""
        if not isinstance(value, dict | list):
            return self._scalar(value, path)
        root: list[Any] = [None]
        stack: list[tuple[Any, str, Any, Any]] = [(value, path, root, 0)]
        while stack:
            item, item_path, parent, key = stack.pop()
            if isinstance(item, dict):  # children pushed last first: visited in document order
                new: Any = dict.fromkeys(item)
                stack.extend((v, join(item_path, str(k)), new, k) for k, v in reversed(item.items()))
            elif isinstance(item, list):
                new = [None] * len(item)
                stack.extend((item[i], join(item_path, i), new, i) for i in reversed(range(len(item))))
            else:
                new = self._scalar(item, item_path)
            parent[key] = new
        return root[0]

    def _scalar(self, value: Any, path: str) -> Any:
        if not isinstance(value, str) or "$" not in value:
            return value
        failed = False

        def repl(m: re.Match[str]) -> str:
            nonlocal failed
            if m.group(0) == "$$":
                return "$"
            text = self.lookup(m.group(1), path)
            if text is None:
                failed = True
                return m.group(0)
            return text

        whole = _REFERENCE.fullmatch(value)
        result = _REFERENCE.sub(repl, value)
        if failed or not whole or whole.group(0) == "$$":
            return result
        # A value that is exactly one reference takes the YAML type of what it expands to, as in otelcol;
        # a string option still reads the text as written (PORT=0123 stays "0123").
        typed = safe_yaml.parse_scalar(result) if result.strip() else result
        return Expanded(result, typed)


def substitute_env(value: Any, path: str, issues: list[ConfigIssue], env: Mapping[str, str],
                   warnings: list[ConfigIssue] | None = None) -> Any:
    """Replace ``${env:NAME}``, ``${NAME}`` and ``${env:NAME:-default}`` in every string of ``value``;
    ``$$`` is a literal ``$``. Errors go to ``issues``, unset variables to ``warnings``."""
    sub = _Substitution(env, "")
    out = sub.value(value, path)
    issues.extend(ConfigIssue(i.path, i.message) for i in sub.issues)
    if warnings is not None:
        warnings.extend(ConfigIssue(i.path, i.message) for i in sub.warnings)
    return out


# -- merging -----------------------------------------------------------------------------------------------

def merge(base: Any, over: Any, append: bool = False, path: str = "") -> Any:
    """``over`` merged onto ``base``: mappings key by key, the rest replaced. With ``append`` the component
    lists of ``service`` (``extensions``, a pipeline's ``receivers`` and ``exporters``) are joined without
    duplicates, as otelcol's ``confmap.enableMergeAppendOption`` gate does."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base[k], v, append, join(path, str(k))) if k in base else v
        return out
    if append and isinstance(base, list) and isinstance(over, list) and _appended(path):
        joined = list(base)
        joined.extend(v for v in over if v not in joined)
        return joined
    return over


def _appended(path: str) -> bool:
    return path == "service.extensions" or (
        path.startswith("service.") and path.endswith((".receivers", ".exporters")))


def unflatten(data: dict[Any, Any]) -> dict[Any, Any]:
    """Top-level keys with ``::`` become nested mappings (``a::b: 1`` is ``a: {b: 1}``), as in otelcol."""
    if not any(isinstance(k, str) and KEY_DELIMITER in k for k in data):
        return data
    out: dict[Any, Any] = {}
    for key, value in data.items():
        if isinstance(key, str) and KEY_DELIMITER in key:
            parts = key.split(KEY_DELIMITER)
            for part in reversed(parts[1:]):
                value = {part: value}
            out = merge(out, {parts[0]: value})
        else:
            out = merge(out, {key: value})
    return out


# -- sources -----------------------------------------------------------------------------------------------

@dataclass
class Loaded:
    """The merged raw config, where each key came from, and what was found on the way."""

    raw: dict[str, Any]
    provenance: Provenance
    issues: list[ConfigIssue] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)
    sources: tuple[str, ...] = ()


def set_source(assignment: str) -> str:
    """``--set key.path=value`` as the ``yaml:`` URI otelcol makes of it. ValueError without ``=``."""
    key, sep, value = assignment.partition("=")
    if not sep:
        raise ValueError(f"--set {assignment!r}: missing equal sign (use --set key.path=value)")
    if not key.strip():
        raise ValueError(f"--set {assignment!r}: the key path is empty")
    return f"yaml:{key.strip().replace('.', KEY_DELIMITER)}: {value.strip()}"


def describe(source: str) -> str:
    """How errors name a source: a file by its path, a URI as written (long inline YAML shortened)."""
    m = _URI.match(source)
    if m is None:
        return source
    scheme, rest = m.group(1), m.group(2)
    if scheme == "file":
        return rest
    if scheme == "yaml":
        flat = " ".join(rest.split())
        return f"yaml:{flat[:60]}..." if len(flat) > 63 else f"yaml:{flat}"
    return source


def read_source(source: str, env: Mapping[str, str]) -> tuple[dict[str, Any], list[ConfigIssue]]:
    """The mapping one source holds, and warnings. Raises ConfigError naming the source."""
    name = describe(source)
    warnings: list[ConfigIssue] = []
    m = _URI.match(source)
    scheme = m.group(1) if m else "file"
    if m is not None and scheme not in SUPPORTED_SCHEMES:
        raise ConfigError([ConfigIssue(
            "", f"config URI scheme {scheme!r} is not supported (use a path, file:PATH, env:NAME or yaml:...)",
            name)])
    if scheme == "file":
        path = m.group(2) if m else source
        data = _parse(read_text(path), path)
    elif scheme == "env":
        var = m.group(2) if m else ""
        if not _ENV_NAME.match(var):
            raise ConfigError([ConfigIssue("", f"invalid environment variable name {var!r}", name)])
        if var not in env:
            warnings.append(ConfigIssue("", f"environment variable {var} is not set; it adds nothing", name))
        data = _parse(env.get(var, ""), name)
    else:
        data = _parse(m.group(2) if m else "", name)
    if data is None:
        return {}, warnings
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue("", "the top level must be a mapping (receivers:, exporters:, ...)", name)])
    return unflatten(data), warnings


def read_text(path: str) -> str:
    """A config file's text: at most :data:`~collector.config.safe_yaml.MAX_BYTES`, UTF-8 (or UTF-16 with a
    byte-order mark). Raises ConfigError naming the file."""
    limit = safe_yaml.MAX_BYTES
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise ConfigError([ConfigIssue("", f"cannot read config file: {e.strerror or e}", path)]) from e
    if len(data) > limit:
        raise ConfigError([ConfigIssue(
            "", f"the file is larger than {limit // (1024 * 1024)} MiB; a config is a few kilobytes", path)])
    try:
        return safe_yaml.decode(data)
    except safe_yaml.YAMLProblem as e:
        raise ConfigError([ConfigIssue("", f"cannot read config file: {e}", path)]) from None


def _parse(text: str, name: str) -> Any:
    if len(text) > safe_yaml.MAX_BYTES:
        raise ConfigError([ConfigIssue("", f"larger than {safe_yaml.MAX_BYTES // (1024 * 1024)} MiB", name)])
    try:
        return safe_yaml.parse(text)
    except safe_yaml.YAMLProblem as e:
        raise ConfigError([ConfigIssue("", f"invalid YAML at {e}", name)]) from None


def load(sources: Sequence[str], env: Mapping[str, str] | None = None,
         gates: FeatureGates | None = None) -> Loaded:
    """Read, substitute and merge ``sources`` in order.

    Raises ConfigError when a source cannot be read or parsed (every such source is named). Substitution
    errors do not stop the loading: they are returned in ``issues``, to be reported with the validation's.
    """
    if not sources:
        raise ConfigError([ConfigIssue("", "no config given (use --config FILE)")])
    env = os.environ if env is None else env
    append = gates is not None and gates.enabled(MERGE_APPEND)
    loaded = Loaded({}, Provenance(), sources=tuple(describe(s) for s in sources))
    unreadable: list[ConfigIssue] = []
    for source in sources:
        name = describe(source)
        try:
            data, warnings = read_source(source, env)
        except ConfigError as e:
            unreadable.extend(e.issues)
            continue
        loaded.warnings.extend(warnings)
        sub = _Substitution(env, name)
        data = sub.value(data, "")
        loaded.issues.extend(sub.issues)
        loaded.warnings.extend(sub.warnings)
        loaded.provenance.record(data, "", name)
        loaded.raw = merge(loaded.raw, data, append)
    if unreadable:
        raise ConfigError(unreadable, warnings=loaded.warnings)
    return loaded

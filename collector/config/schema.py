"""Typed config: frozen dataclasses decoded from YAML with every error named by its key path.

A component's config is a frozen dataclass. Field types drive decoding (``int``, ``float``, ``bool``,
``str``, :class:`Duration`, :class:`ByteSize`, secrets (:class:`~collector.config.opaque.Opaque` and its
URL kinds: decoded from text, never echoed in an error), ``Literal[...]``, ``list[T]``, ``dict[str, T]``,
``T | None``, nested dataclasses); field metadata adds bounds (``ge``, ``gt``, ``le``, ``lt``, ``min_len``)
``alias`` (another accepted key name) and ``present_enables`` (for an optional section ``X | None``:
the key written with no value, ``grpc:``, means "enabled with defaults", as in the OTel Collector).
A class may define ``validate(self)`` yielding ``(relative_path, message)`` pairs for checks across
fields, and a ``NOT_IMPLEMENTED`` class attribute naming the keys its OTel Collector namesake has and
tracetriage does not implement (key -> what to do instead), which are refused as such rather than as
unknown. A class deriving from :class:`SelfDecoding` decodes itself (for a mapping whose keys depend on one
of its values). Decoding never stops at the first error.

A value that was exactly one ``${env:NAME}`` reference arrives as :class:`Expanded`: a string option reads
the text as written, any other option the YAML value it parses to, as otelcol does.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Self, TypeVar, Union, get_args, get_origin, get_type_hints

from collector.config.opaque import Opaque

T = TypeVar("T")

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "ki": 1024, "kib": 1024, "m": 1000**2, "mb": 1000**2,
               "mi": 1024**2, "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gi": 1024**3, "gib": 1024**3}


class Duration(float):
    """Seconds, written in config as Go durations: ``10s``, ``500ms``, ``1m30s``, ``2h``."""

    @classmethod
    def parse(cls, value: object) -> Duration:
        if isinstance(value, bool):
            raise ValueError("expected a duration such as 10s or 500ms")
        if isinstance(value, int | float):
            if value == 0:
                return cls(0.0)
            raise ValueError(f"duration {value!r} needs a unit, e.g. {value}s or {value}ms")
        if not isinstance(value, str):
            raise ValueError(f"expected a duration such as 10s or 500ms, got {type(value).__name__}")
        text = value.strip()
        if text in ("0", "-0"):
            return cls(0.0)
        pos, total = 0, 0.0
        negative = text.startswith("-")
        if negative:
            pos = 1
        for m in _DURATION_RE.finditer(text, pos):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
            pos = m.end()
        if pos != len(text) or not text[1 if negative else 0:]:
            raise ValueError(f"invalid duration {value!r} (use units ns, us, ms, s, m, h: e.g. 10s, 1m30s)")
        return cls(-total if negative else total)


class ByteSize(int):
    """A size in bytes; config may say ``4194304``, ``4MiB``, ``512KiB``, ``1GB``."""

    @classmethod
    def parse(cls, value: object) -> ByteSize:
        if isinstance(value, bool):
            raise ValueError("expected a size in bytes")
        if isinstance(value, int):
            return cls(value)
        if isinstance(value, str):
            m = _SIZE_RE.match(value)
            if m:
                return cls(int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()]))
        raise ValueError(f"invalid size {value!r} (e.g. 4194304, 4MiB, 512KiB)")


@dataclasses.dataclass
class ConfigIssue:
    path: str
    message: str
    file: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        return f"{where}{self.path}: {self.message}" if self.path else f"{where}{self.message}"


class ConfigError(Exception):
    """Every problem found in a configuration, each with its file and key path, and the warnings found on
    the way (unset environment variables may explain an error)."""

    def __init__(self, issues: Iterable[ConfigIssue], warnings: Iterable[ConfigIssue] = ()) -> None:
        self.issues = list(issues)
        self.warnings = list(warnings)
        super().__init__("\n".join(str(i) for i in self.issues))


NOT_IMPLEMENTED_MESSAGE = "an OTel Collector option that tracetriage does not implement"


class Expanded:
    """A config value that was exactly one ``${env:NAME}`` reference: the text it expanded to and the YAML
    value that text parses to (``4317`` -> 4317)."""

    __slots__ = ("text", "value")

    def __init__(self, text: str, value: Any) -> None:
        self.text = text
        self.value = value

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Expanded):
            return bool(self.value == other.value)
        return bool(self.value == other)

    def __hash__(self) -> int:
        return hash(self.value) if not isinstance(self.value, dict | list) else hash(self.text)

    def __repr__(self) -> str:
        return repr(self.value)


def plain(value: Any) -> Any:
    """``value`` with every :class:`Expanded` replaced by its YAML value."""
    if isinstance(value, Expanded):
        return value.value
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _reads_text(tp: Any) -> bool:
    """Whether an option of type ``tp`` takes an expanded value as written: ``str`` and string choices."""
    if get_origin(tp) is typing.Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (Union, types.UnionType):
        inner = [a for a in get_args(tp) if a is not type(None)]
        return len(inner) == 1 and _reads_text(inner[0])
    if get_origin(tp) is Literal:
        return all(isinstance(c, str) for c in get_args(tp))
    return tp is str or (isinstance(tp, type) and issubclass(tp, Opaque))


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def field(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
          **meta: Any) -> Any:
    """A dataclass field with bounds: ``field(10, ge=1)``, ``field(alias='topic')``."""
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class SelfDecoding:
    """A config class that decodes itself with :meth:`decode_config` instead of field by field: for a
    mapping whose valid keys depend on one of its values (a tail_sampling policy, whose settings block is
    named by its ``type``). It reports problems with ``decoder.error`` and decodes nested values with
    ``decoder.decode``, so that their issues keep their key paths."""

    @classmethod
    def decode_config(cls, decoder: Decoder, value: Any, path: str) -> Self:
        raise NotImplementedError(f"{cls.__name__} must define decode_config")


class Decoder:
    """Decodes plain YAML values into typed configs, collecting every issue."""

    def __init__(self) -> None:
        self.issues: list[ConfigIssue] = []

    def error(self, path: str, message: str) -> None:
        self.issues.append(ConfigIssue(path, message))

    def decode(self, tp: Any, value: Any, path: str) -> Any:
        if isinstance(value, Expanded):
            value = value.text if _reads_text(tp) else value.value
        origin = get_origin(tp)
        if tp is Any or tp is object:
            return plain(value)
        if origin is typing.Annotated:
            return self.decode(get_args(tp)[0], value, path)
        if origin in (Union, types.UnionType):
            args = get_args(tp)
            if value is None and type(None) in args:
                return None
            inner = [a for a in args if a is not type(None)]
            if len(inner) == 1:
                return self.decode(inner[0], value, path)
            return self._decode_union(inner, value, path)
        if origin is Literal:
            choices = get_args(tp)
            if value not in choices or isinstance(value, bool) != any(isinstance(c, bool) for c in choices):
                self.error(path, f"must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
                return choices[0]
            return value
        if origin in (list, tuple) or tp in (list, tuple):
            args = get_args(tp)
            item_tp = args[0] if args else Any
            if value is None:
                return ()
            if not isinstance(value, list):
                self.error(path, f"must be a list, got {_kind(value)}")
                return ()
            return tuple(self.decode(item_tp, v, join(path, i)) for i, v in enumerate(value))
        if origin is dict or tp is dict:
            args = get_args(tp)
            val_tp = args[1] if args else Any
            if value is None:
                return {}
            if not isinstance(value, Mapping):
                self.error(path, f"must be a mapping, got {_kind(value)}")
                return {}
            out = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    self.error(join(path, str(k)), "keys must be strings")
                    continue
                out[k] = self.decode(val_tp, v, join(path, k))
            return out
        if isinstance(tp, type) and (dataclasses.is_dataclass(tp) or issubclass(tp, SelfDecoding)):
            return self.decode_dataclass(tp, value, path)
        if isinstance(tp, type) and issubclass(tp, Duration | ByteSize):
            try:
                return tp.parse(value)
            except ValueError as e:
                self.error(path, str(e))
                return tp(0)
        if isinstance(tp, type) and issubclass(tp, Opaque):
            return self._decode_opaque(tp, value, path)
        if tp is bool:
            if isinstance(value, bool):
                return value
            self.error(path, f"must be true or false, got {value!r}")
            return False
        if tp is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            self.error(path, f"must be an integer, got {value!r}")
            return 0
        if tp is float:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            self.error(path, f"must be a number, got {value!r}")
            return 0.0
        if tp is str:
            if isinstance(value, str):
                return value
            if isinstance(value, int | float) and not isinstance(value, bool):
                return str(value)
            self.error(path, f"must be a string, got {_kind(value)}")
            return ""
        raise TypeError(f"config type {tp!r} not supported at {path}")

    def _decode_opaque(self, tp: type[Opaque], value: Any, path: str) -> Opaque:
        """A secret: a string (or a number, read as its text), never echoed in an error."""
        if isinstance(value, Opaque):
            return tp(value.reveal())
        if isinstance(value, str):
            return tp(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return tp(str(value))
        kind = "nothing" if value is None else "a mapping" if isinstance(value, Mapping) else (
            "a list" if isinstance(value, list) else f"a {type(value).__name__} (value not shown: a secret)")
        self.error(path, f"must be a string, got {kind}")
        return tp("")

    def _decode_union(self, options: list[Any], value: Any, path: str) -> Any:
        for opt in options:
            sub = Decoder()
            result = sub.decode(opt, value, path)
            if not sub.issues:
                return result
        # None fits. When one option alone has the value's shape (a mapping, a list), its own issues say
        # what is wrong, each with its key path (``ownership.default_team: must not be empty``).
        shaped = [opt for opt in options if _shape_of_type(opt) == _shape_of_value(value)]
        if len(shaped) == 1 and _shape_of_value(value) != "scalar":
            return self.decode(shaped[0], value, path)
        self.error(path, f"has the wrong type ({_kind(value)})")
        return None

    def decode_dataclass(self, cls: type[T], value: Any, path: str) -> T:
        if issubclass(cls, SelfDecoding):
            decoded: T = cls.decode_config(self, value, path)
            return decoded
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            self.error(path, f"must be a mapping, got {_kind(value)}")
            value = {}
        hints = get_type_hints(cls, include_extras=True)
        fields = [f for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
        by_key: dict[str, dataclasses.Field[Any]] = {}
        for f in fields:
            by_key[f.name] = f
            alias = f.metadata.get("alias")
            if alias:
                by_key[alias] = f
        kwargs: dict[str, Any] = {}
        for key, raw in value.items():
            f2 = by_key.get(key) if isinstance(key, str) else None
            if f2 is None:
                upstream: Mapping[str, str] = getattr(cls, "NOT_IMPLEMENTED", {})
                if isinstance(key, str) and key in upstream:
                    hint = upstream[key]
                    self.error(join(path, key), NOT_IMPLEMENTED_MESSAGE + (f"; {hint}" if hint else ""))
                    continue
                valid = ", ".join(sorted(_key_name(f) for f in fields))
                self.error(join(path, str(key)), f"unknown key (valid keys: {valid})")
                continue
            if f2.name in kwargs:
                self.error(join(path, str(key)), f"given twice (also as {f2.name})")
                continue
            sub_path = join(path, key)
            before = len(self.issues)
            if raw is None and f2.metadata.get("present_enables"):
                raw = {}
            decoded = self.decode(hints[f2.name], raw, sub_path)
            if len(self.issues) == before:
                self._check_bounds(f2, decoded, sub_path)
            kwargs[f2.name] = decoded
        missing = False
        for f in fields:
            if f.name in kwargs:
                continue
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.error(join(path, f.name), "is required")
                kwargs[f.name] = _zero(hints[f.name])
                missing = True
        try:
            obj = cls(**kwargs)
        except (TypeError, ValueError) as e:
            self.error(path, str(e))
            obj = cls.__new__(cls)
            for k, v in kwargs.items():
                object.__setattr__(obj, k, v)
            return obj
        validate: Callable[[], Iterable[tuple[str | int, str]]] | None = getattr(obj, "validate", None)
        if validate is not None and not missing:  # checks across fields mean nothing with a stand-in value
            for rel, message in validate() or ():
                self.error(_join_rel(path, rel), message)
        return obj

    def _check_bounds(self, f: dataclasses.Field[Any], value: Any, path: str) -> None:
        meta = f.metadata
        if value is None:
            return
        if "ge" in meta and value < meta["ge"]:
            self.error(path, f"must be >= {meta['ge']}, got {value!r}")
        if "gt" in meta and value <= meta["gt"]:
            self.error(path, f"must be > {meta['gt']}, got {value!r}")
        if "le" in meta and value > meta["le"]:
            self.error(path, f"must be <= {meta['le']}, got {value!r}")
        if "lt" in meta and value >= meta["lt"]:
            self.error(path, f"must be < {meta['lt']}, got {value!r}")
        if "min_len" in meta and len(value) < meta["min_len"]:
            self.error(path, "must not be empty" if meta["min_len"] == 1 else f"needs {meta['min_len']} items")


def _join_rel(path: str, rel: str | int) -> str:
    if isinstance(rel, int):
        return join(path, rel)
    if not rel:
        return path
    if rel.startswith("["):
        return path + rel
    return join(path, rel)


def _shape_of_type(tp: Any) -> str:
    origin = get_origin(tp) or tp
    if origin is dict or (isinstance(tp, type) and (dataclasses.is_dataclass(tp) or issubclass(tp, SelfDecoding))):
        return "mapping"
    if origin in (list, tuple):
        return "list"
    return "scalar"


def _shape_of_value(value: Any) -> str:
    if isinstance(value, Mapping):
        return "mapping"
    return "list" if isinstance(value, list) else "scalar"


def _key_name(f: dataclasses.Field[Any]) -> str:
    alias = f.metadata.get("alias")
    return str(alias) if alias and f.name.endswith("_") else f.name


def _zero(tp: Any) -> Any:
    """A stand-in for a required option that is missing (the error is already recorded)."""
    if get_origin(tp) is typing.Annotated:
        tp = get_args(tp)[0]
    origin = get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return None
    if origin in (list, tuple) or tp in (list, tuple):
        return ()
    if origin is dict or tp is dict:
        return {}
    if origin is Literal:
        return get_args(tp)[0]
    if isinstance(tp, type) and issubclass(tp, Opaque):
        return tp("")
    return {int: 0, float: 0.0, str: "", bool: False}.get(tp)


def _kind(value: Any) -> str:
    if isinstance(value, Expanded):
        value = value.value
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def decode(cls: type[T], value: Any, path: str = "") -> T:
    """Decode ``value`` into ``cls`` or raise :class:`ConfigError` listing every issue."""
    d = Decoder()
    obj = d.decode_dataclass(cls, value, path)
    if d.issues:
        raise ConfigError(d.issues)
    return obj

"""Test definitions in Tracetest's YAML format, read directly.

::

    type: Test
    spec:
      id: checkout-places-order          # optional
      name: Checkout places the order
      description: ...                   # optional
      owner: payments                    # optional (ours): the team that owns every spec's failures
      trigger:
        type: http
        httpRequest:
          method: POST
          url: ${env:SHOP_URL}/checkout
          headers: [{key: Content-Type, value: application/json}]
          body: '{}'
      specs:
        - selector: span[tracetest.span.type="http" name="POST /checkout"]
          name: checkout answers 200
          assertions:
            - attr:http.status_code = 200
            - attr:tracetest.span.duration < 500ms

``${env:NAME}`` is substituted in every string (an unset variable is an error). Whatever is not supported, a
key (``outputs``, ``pollingProfile``), a trigger type, a selector or an assertion feature, refuses the file
with :class:`DefinitionError`, naming the file, the spec and what is unsupported. Nothing is skipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.config.safe_yaml import YAMLProblem, decode, parse
from pipelines.trace_tests.assertion import Assertion, AssertionSyntaxError, parse_assertion
from pipelines.trace_tests.selector import Selector, SelectorError, parse_selector

MAX_FILE_BYTES = 1024 * 1024
TRIGGER_TYPES = ("http", "grpc")
_SPEC_KEYS = ("id", "name", "description", "owner", "trigger", "specs")
_SPEC_ITEM_KEYS = ("selector", "name", "assertions")
_HTTP_KEYS = ("method", "url", "headers", "body")
_GRPC_KEYS = ("address", "method", "protobufFile", "request", "metadata")
_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


class DefinitionError(ValueError):
    """A definition file that cannot be read or uses what is not supported."""


@dataclass(frozen=True)
class HttpTrigger:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""


@dataclass(frozen=True)
class GrpcTrigger:
    address: str  # host:port (a host alone: port 443, as in gRPC)
    method: str  # package.Service.Method (or package.Service/Method)
    protobuf_file: str = ""  # a path relative to base_dir, or the proto's text
    request: str = ""  # the request message as protobuf JSON
    metadata: tuple[tuple[str, str], ...] = ()
    base_dir: str = ""  # the definition file's folder


_GRPC_METHOD = re.compile(r"^/?(?P<service>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)[./]"
                          r"(?P<method>[A-Za-z_][A-Za-z0-9_]*)$")
_GRPC_ADDRESS = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>[0-9]{1,5}))?$")
_METADATA_KEY = re.compile(r"^[0-9a-z_.-]+$")


def split_grpc_method(method: str) -> tuple[str, str]:
    """``package.Service.Method`` (or ``package.Service/Method``) as (``package.Service``, ``Method``)."""
    m = _GRPC_METHOD.match(method)
    if m is None:
        raise DefinitionError(f"method: must be package.Service.Method (or package.Service/Method), not {method!r}")
    return m.group("service"), m.group("method")


def _check_grpc(t: GrpcTrigger, where: str) -> None:
    m = _GRPC_ADDRESS.match(t.address)
    if m is None or (m.group("port") is not None and not 0 < int(m.group("port")) < 65536):
        raise DefinitionError(f"{where}.address: must be host:port (plaintext gRPC, as Tracetest dials), "
                              f"not {t.address!r}")
    try:
        split_grpc_method(t.method)
    except DefinitionError as e:
        raise DefinitionError(f"{where}.{e}") from None
    if not t.protobuf_file.strip():
        raise DefinitionError(f"{where}.protobufFile: required (a .proto path relative to the definition, or the "
                              "proto's text): server reflection is not used")
    for key, value in t.metadata:
        k = key.lower()
        if not _METADATA_KEY.match(k) or k.startswith("grpc-") or k.endswith("-bin"):
            raise DefinitionError(f"{where}.metadata: key {key!r} cannot be sent (gRPC metadata keys are "
                                  "0-9 a-z _ . -, not grpc-*, and binary -bin keys are not supported)")
        if not all(" " <= c <= "~" for c in value):
            raise DefinitionError(f"{where}.metadata: the value of {key!r} cannot be sent (gRPC metadata values "
                                  "are printable ASCII)")


@dataclass(frozen=True)
class Spec:
    name: str  # given, else the selector's text
    selector: Selector
    assertions: tuple[Assertion, ...]


@dataclass(frozen=True)
class TestDefinition:
    path: str
    name: str
    specs: tuple[Spec, ...]
    trigger: HttpTrigger | GrpcTrigger | None = None
    id: str = ""
    owner: str = ""
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    __test__ = False

    def matches_first(self) -> Selector:
        """The selector that decides whether a live trace is one this test is about."""
        return self.specs[0].selector


def _substitute(value: Any, where: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in env:
                raise DefinitionError(f"{where}: ${{env:{name}}} is not set")
            return env[name]
        return _ENV.sub(one, value)
    if isinstance(value, list):
        return [_substitute(v, f"{where}[{i}]", env) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _substitute(v, f"{where}.{k}", env) for k, v in value.items()}
    return value


def _unknown(mapping: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    extra = [str(k) for k in mapping if k not in allowed]
    if extra:
        raise DefinitionError(f"{where}: {', '.join(extra)} {'is' if len(extra) == 1 else 'are'} not supported "
                              f"(supported: {', '.join(allowed)})")


def _pairs(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(h, dict) and set(h) <= {"key", "value"} for h in value):
        raise DefinitionError(f"{where}: must be a list of {{key, value}}")
    return tuple((str(h.get("key", "")), str(h.get("value", ""))) for h in value)


def _trigger(raw: Any, where: str, base_dir: str) -> HttpTrigger | GrpcTrigger | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise DefinitionError(f"{where}: must be a mapping")
    kind = raw.get("type")
    if kind == "http":
        _unknown(raw, ("type", "httpRequest"), where)
        req = raw.get("httpRequest")
        if not isinstance(req, dict):
            raise DefinitionError(f"{where}.httpRequest: must be a mapping with method and url")
        _unknown(req, _HTTP_KEYS, f"{where}.httpRequest")
        url = req.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://", url):
            raise DefinitionError(f"{where}.httpRequest.url: must be an http:// or https:// URL, not {url!r}")
        body = req.get("body", "")
        return HttpTrigger(str(req.get("method", "GET")).upper(), url, _pairs(req.get("headers"),
                           f"{where}.httpRequest.headers"), body if isinstance(body, str) else str(body or ""))
    if kind == "grpc":
        _unknown(raw, ("type", "grpc"), where)
        req = raw.get("grpc")
        if not isinstance(req, dict):
            raise DefinitionError(f"{where}.grpc: must be a mapping with address and method")
        if "auth" in req:  # Tracetest accepts it for gRPC and sends nothing: refused rather than ignored
            raise DefinitionError(f"{where}.grpc.auth: not supported for gRPC triggers (Tracetest does not apply "
                                  "it either): send credentials in metadata, e.g. {key: authorization, value: "
                                  "Bearer ...}")
        _unknown(req, _GRPC_KEYS, f"{where}.grpc")
        address, method = req.get("address"), req.get("method")
        if not isinstance(address, str) or not isinstance(method, str) or not method:
            raise DefinitionError(f"{where}.grpc: needs address and method (package.Service.Method)")
        request = req.get("request")
        if request is not None and not isinstance(request, str):
            raise DefinitionError(f"{where}.grpc.request: must be the request message's JSON as text "
                                  "(request: |- followed by the JSON)")
        trigger = GrpcTrigger(address, method, str(req.get("protobufFile") or ""), request or "",
                              _pairs(req.get("metadata"), f"{where}.grpc.metadata"), base_dir)
        _check_grpc(trigger, f"{where}.grpc")
        return trigger
    raise DefinitionError(f"{where}.type: trigger type {kind!r} is not supported (supported: "
                          f"{', '.join(TRIGGER_TYPES)})")


def load_definition_text(text: str, path: str = "<text>", env: Mapping[str, str] | None = None, *,
                         live: bool = False) -> TestDefinition:
    """A definition from YAML text; raises :class:`DefinitionError` naming ``path``, the spec and the problem.

    ``live``: for the processor, which fires no trigger: ``spec.trigger`` is not read (its ``${env:...}`` need
    not be set) and the definition has none."""
    try:
        doc = parse(text)
    except YAMLProblem as e:
        raise DefinitionError(f"{path}: {e}") from None
    try:
        return _definition(doc, path, os.environ if env is None else env, live)
    except DefinitionError as e:
        raise DefinitionError(f"{path}: {e}") from None


def load_definition(path: str | Path, env: Mapping[str, str] | None = None, *, live: bool = False
                    ) -> TestDefinition:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise DefinitionError(f"{p}: cannot read: {e.strerror or e}") from None
    if len(data) > MAX_FILE_BYTES:
        raise DefinitionError(f"{p}: larger than {MAX_FILE_BYTES} bytes")
    try:
        text = decode(data)
    except YAMLProblem as e:
        raise DefinitionError(f"{p}: {e}") from None
    return load_definition_text(text, str(p), env, live=live)


def _definition(doc: Any, path: str, env: Mapping[str, str], live: bool = False) -> TestDefinition:
    if not isinstance(doc, dict):
        raise DefinitionError("must be a mapping with type: Test and spec")
    if doc.get("type") != "Test":
        raise DefinitionError(f"type {doc.get('type')!r} is not supported (only type: Test)")
    _unknown(doc, ("type", "spec"), "the document")
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        raise DefinitionError("spec: must be a mapping")
    _unknown(spec, _SPEC_KEYS, "spec")
    raw_trigger = spec.get("trigger")
    spec = _substitute({k: v for k, v in spec.items() if k != "trigger"}, "spec", env)
    if not live:
        spec["trigger"] = _substitute(raw_trigger, "spec.trigger", env)
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise DefinitionError("spec.name: must be a non-empty string")
    owner = spec.get("owner") or ""
    if not isinstance(owner, str):
        raise DefinitionError("spec.owner: must be a team name")
    items = spec.get("specs")
    if not isinstance(items, list) or not items:
        raise DefinitionError("spec.specs: must be a non-empty list")
    specs: list[Spec] = []
    for i, item in enumerate(items):
        where = f"spec.specs[{i}]"
        if not isinstance(item, dict):
            raise DefinitionError(f"{where}: must be a mapping with selector and assertions")
        label = f"{where} ({item.get('name') or item.get('selector')!r})"
        _unknown(item, _SPEC_ITEM_KEYS, label)
        raw_sel = item.get("selector", "")
        if isinstance(raw_sel, dict):  # the older {query: ...} form
            raw_sel = raw_sel.get("query", "")
        try:
            selector = parse_selector(raw_sel if raw_sel is not None else "")
        except SelectorError as e:
            raise DefinitionError(f"{label}.selector: {e}") from None
        raw_asserts = item.get("assertions")
        if not isinstance(raw_asserts, list) or not raw_asserts:
            raise DefinitionError(f"{label}.assertions: must be a non-empty list")
        assertions: list[Assertion] = []
        for j, a in enumerate(raw_asserts):
            try:
                assertions.append(parse_assertion(a))
            except AssertionSyntaxError as e:
                raise DefinitionError(f"{label}.assertions[{j}]: {e}") from None
        spec_name = item.get("name") or selector.text or "(all spans)"
        specs.append(Spec(str(spec_name).strip(), selector, tuple(assertions)))
    seen: dict[str, int] = {}
    for i, s in enumerate(specs):  # results and metrics are per spec name: a repeated one gets " #2", " #3"
        seen[s.name] = seen.get(s.name, 0) + 1
        if seen[s.name] > 1:
            specs[i] = Spec(f"{s.name} #{seen[s.name]}", s.selector, s.assertions)
    return TestDefinition(path=path, name=name.strip(), specs=tuple(specs),
                          trigger=_trigger(spec.get("trigger"), "spec.trigger", str(Path(path).parent)),
                          id=str(spec.get("id") or ""),
                          owner=owner, description=str(spec.get("description") or ""))

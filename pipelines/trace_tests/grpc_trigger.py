"""gRPC triggers of ``tracetriage test run``, fired as Tracetest fires them.

* ``protobufFile`` is compiled by protoc (``grpc_tools.protoc``, the ``tracetests`` extra) into a descriptor set,
  once per file and run, in a child process bounded by ``--timeout``; its messages name the file and line.
  A path is read relative to the definition file (Tracetest's CLI embeds the file it names); text with a newline
  or a ``{`` is the proto itself (Tracetest's API form). Imports resolve from the proto's folder (the definition's
  for inline text) and protoc's well-known types.
* ``method`` ``package.Service.Method`` (or ``package.Service/Method``, as grpcurl takes it) must be a unary method
  of that file; streaming methods are refused (Tracetest keeps one response).
* ``request`` is the request message in protobuf JSON; unknown fields are ignored, as Tracetest (grpcurl) does.
* ``metadata`` is sent with the W3C ``traceparent`` of the run (which replaces one given in ``metadata``), over a
  plaintext HTTP/2 connection to ``address`` (``host:port``; a host alone means port 443, as in gRPC).
* The response: ``tracetest.response.status`` is the gRPC status code number (0 = OK), ``tracetest.response.body``
  the response message as JSON (lowerCamelCase names, default values included, indent 2; empty when the status is
  not OK), ``tracetest.response.headers`` the response metadata as ``[{"key", "value"}]`` JSON, as Tracetest sets
  them; ``tracetriage.response.status_details`` keeps the status message. A non-OK status is a response: the
  specs decide. A connection that cannot be made, a proto that does not compile, an unknown service or method
  or a request that is not that message's JSON is a trigger failure, reported for that test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.trace_tests.definition import GrpcTrigger, split_grpc_method

if TYPE_CHECKING:
    from google.protobuf.descriptor import MethodDescriptor
    from google.protobuf.descriptor_pool import DescriptorPool

INSTALL_HINT = "gRPC triggers need grpcio-tools (protoc): pip install tracetriage[tracetests]"
MAX_PROTO_BYTES = 1024 * 1024  # a protobufFile larger than this is refused
MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # the channel's max_receive_message_length (gRPC's default, made explicit)
MAX_PROTOC_MESSAGE = 4000  # characters of protoc's error output kept in the report
STATUS_DETAILS_ATTR = "tracetriage.response.status_details"
INLINE_NAME = "inline.proto"


class GrpcTriggerError(Exception):
    """The trigger could not be fired (no response to test); the message says why."""


def is_inline(protobuf_file: str) -> bool:
    """Whether ``protobufFile`` is the proto's text (Tracetest's API form) rather than a path."""
    return "\n" in protobuf_file or "{" in protobuf_file


def proto_path(trigger: GrpcTrigger) -> Path:
    """Where a path ``protobufFile`` is: relative to the definition file's folder."""
    return Path(trigger.base_dir or ".") / trigger.protobuf_file


class Protos:
    """The compiled ``protobufFile`` of a run's triggers, each compiled once (a failure too is kept)."""

    def __init__(self) -> None:
        self._compiled: dict[tuple[str, str], DescriptorPool | GrpcTriggerError] = {}
        self._services: dict[tuple[str, str], list[str]] = {}

    async def method(self, trigger: GrpcTrigger, limit: float) -> tuple[DescriptorPool, MethodDescriptor]:
        """The trigger's method, from its compiled proto; raises :class:`GrpcTriggerError`."""
        if is_inline(trigger.protobuf_file):
            key, name = ("inline:" + trigger.base_dir, trigger.protobuf_file), "(inline text)"
        else:
            key, name = ("file", str(proto_path(trigger).resolve())), trigger.protobuf_file
        got = self._compiled.get(key)
        if got is None:
            try:
                pool, services = await _compile(trigger, limit)
            except GrpcTriggerError as e:
                got = self._compiled[key] = GrpcTriggerError(f"protobufFile {name}: {e}")
            else:
                got = self._compiled[key] = pool
                self._services[key] = services
        if isinstance(got, GrpcTriggerError):
            raise got
        service_name, method_name = split_grpc_method(trigger.method)
        try:
            service = got.FindServiceByName(service_name)
        except KeyError:
            known = ", ".join(self._services.get(key, ())) or "none"
            raise GrpcTriggerError(f"method {trigger.method}: protobufFile {name} has no service {service_name!r} "
                                   f"(its services: {known})") from None
        method = service.methods_by_name.get(method_name)
        if method is None:
            raise GrpcTriggerError(f"method {trigger.method}: service {service_name} has no method {method_name!r} "
                                   f"(its methods: {', '.join(service.methods_by_name) or 'none'})")
        if method.client_streaming or method.server_streaming:
            raise GrpcTriggerError(f"method {trigger.method} is a streaming method: only unary methods can be "
                                   "triggered (as in Tracetest)")
        return got, method


async def _compile(trigger: GrpcTrigger, limit: float) -> tuple[DescriptorPool, list[str]]:
    try:
        import grpc_tools  # noqa: F401  (protoc runs in a child process: is it installed?)
    except ImportError:
        raise GrpcTriggerError(INSTALL_HINT) from None
    from google.protobuf import descriptor_pool
    from google.protobuf.descriptor_pb2 import FileDescriptorSet

    with tempfile.TemporaryDirectory(prefix="tracetriage-proto-") as tmp:
        out = Path(tmp) / "set.pb"
        if is_inline(trigger.protobuf_file):
            text = trigger.protobuf_file.encode()
            if len(text) > MAX_PROTO_BYTES:
                raise GrpcTriggerError(f"larger than {MAX_PROTO_BYTES} bytes")
            (Path(tmp) / INLINE_NAME).write_bytes(text)
            includes, target = [tmp, trigger.base_dir or "."], str(Path(tmp) / INLINE_NAME)
        else:
            path = proto_path(trigger)
            try:
                size = path.stat().st_size
            except OSError as e:
                raise GrpcTriggerError(f"cannot read {path}: {e.strerror or e}") from None
            if not path.is_file():
                raise GrpcTriggerError(f"{path} is not a file")
            if size > MAX_PROTO_BYTES:
                raise GrpcTriggerError(f"{path}: larger than {MAX_PROTO_BYTES} bytes")
            includes, target = [str(path.parent)], str(path)
        # `python -m grpc_tools.protoc` adds the well-known types (google/protobuf/*.proto) to the include path.
        args = [sys.executable, "-m", "grpc_tools.protoc", f"--descriptor_set_out={out}", "--include_imports",
                *(f"-I{d}" for d in includes), target]
        proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(limit):
                stdout, stderr = await proc.communicate()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise GrpcTriggerError(f"protoc did not finish within {limit:g}s") from None
        if proc.returncode != 0:
            message = (stderr or stdout).decode("utf-8", "replace").strip().replace(tmp + "/", "")
            raise GrpcTriggerError(f"protoc: {message[:MAX_PROTOC_MESSAGE] or f'exit code {proc.returncode}'}")
        fds = FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    services: list[str] = []
    for f in fds.file:  # --include_imports lists each file after the files it imports
        pool.AddSerializedFile(f.SerializeToString())
        services.extend(f"{f.package}.{s.name}" if f.package else s.name for s in f.service)
    return pool, services


async def fire_grpc(trigger: GrpcTrigger, traceparent: str, limit: float, protos: Protos
                    ) -> dict[str, str | int | float | bool]:
    """Call the trigger's method with its request and metadata plus ``traceparent``, bounded by ``limit``
    seconds in all (compiling included); the response as ``tracetest.response.*`` attributes."""
    import grpc
    from google.protobuf import json_format, message_factory

    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    pool, method = await protos.method(trigger, limit)
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    try:
        request = json_format.Parse(trigger.request or "{}", request_class(), ignore_unknown_fields=True,
                                    descriptor_pool=pool)
    except json_format.ParseError as e:
        raise GrpcTriggerError(f"request: not a {method.input_type.full_name} in JSON: {e}") from None
    metadata = [(k.lower(), v) for k, v in trigger.metadata if k and k.lower() != "traceparent"]
    metadata.append(("traceparent", traceparent))
    path = f"/{method.containing_service.full_name}/{method.name}"
    options = [("grpc.max_receive_message_length", MAX_RESPONSE_BYTES)]
    async with grpc.aio.insecure_channel(trigger.address, options=options) as channel:
        try:
            async with asyncio.timeout_at(deadline):
                await _connect(channel, trigger.address)
        except TimeoutError:
            raise GrpcTriggerError(f"cannot connect to {trigger.address} within {limit:g}s") from None
        call = channel.unary_unary(path, request_serializer=_serialize,
                                   response_deserializer=response_class.FromString)
        body, details = "", ""
        remaining = max(0.001, deadline - loop.time())
        try:
            pending = call(request, metadata=tuple(metadata), timeout=remaining)
            response = await pending
            code = await pending.code()
            headers: Any = await pending.initial_metadata()
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED and loop.time() >= deadline:  # ours, not the server's
                raise GrpcTriggerError(f"no response within {limit:g}s (--timeout)") from None
            code, details, headers = e.code(), e.details() or "", e.initial_metadata()
        else:
            try:
                body = json_format.MessageToJson(response, indent=2, descriptor_pool=pool,
                                                 always_print_fields_with_no_presence=True)
            except (json_format.SerializeToJsonError, TypeError, ValueError) as e:
                raise GrpcTriggerError(f"the {method.output_type.full_name} response cannot be written as JSON: "
                                       f"{e}") from None
    pairs = [{"key": str(k), "value": v if isinstance(v, str) else repr(v)} for k, v in (headers or ())]
    return {"tracetest.response.status": int(code.value[0]), "tracetest.response.body": body,
            "tracetest.response.headers": json.dumps(pairs), STATUS_DETAILS_ATTR: details}


def _serialize(message: Any) -> bytes:
    return bytes(message.SerializeToString())


async def _connect(channel: Any, address: str) -> None:
    """Wait until the channel is connected (as Tracetest dials before calling); a failed connection is an error."""
    import grpc

    state = channel.get_state(try_to_connect=True)
    while state != grpc.ChannelConnectivity.READY:
        if state == grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            raise GrpcTriggerError(f"cannot connect to {address}: the connection failed (is the service "
                                   "listening there?)")
        await channel.wait_for_state_change(state)
        state = channel.get_state(try_to_connect=True)


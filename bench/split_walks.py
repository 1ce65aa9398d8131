"""The split by trace alone, per walk and payload shape, in this process:
``python -m bench.split_walks [--walk compiled|vectorized|python ...] [--shape NAME ...] [--ids-once]``.

Each shape's request (``bench.shapes``) is split with :func:`collector.wire.split_by_trace` for 0.2 s, five
times; the figure is the fastest of the five, in nanoseconds per span. ``vectorized`` keeps numba out and
takes every request to the numpy walk; ``python`` takes every request to the Python walk. ``--ids-once``
splits as the receivers do (the bytes are known to hold each span's ids once).
"""

from __future__ import annotations

import argparse
import json
import time

from bench.shapes import SHAPES, build_request, encode
from collector.wire import _jit, _split, load_compiled, split_by_trace

DEFAULT_SHAPES = ("baseline", "trace_1", "events_links", "long_values", "flags_middle", "scope_per_span")


def measure(walk: str, shapes: list[str], ids_once: bool) -> dict[str, int]:
    if walk == "compiled":
        if not load_compiled():
            raise SystemExit("the compiled walk needs numba (the jit extra)")
        _split.MIN_BYTES = 8192
    else:
        _jit._kernel = None
        _split.MIN_BYTES = 1 << 62 if walk == "python" else 0
    out: dict[str, int] = {}
    for name in shapes:
        shape = SHAPES[name]
        req = build_request(shape, 0, 1)
        data = encode(req, shape.order)
        spans = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
        split_by_trace(data, ids_once=ids_once)
        best = float("inf")
        for _ in range(5):
            t0, k = time.perf_counter(), 0
            while time.perf_counter() - t0 < 0.2:
                split_by_trace(data, ids_once=ids_once)
                k += 1
            best = min(best, (time.perf_counter() - t0) / k / spans * 1e9)
        out[name] = round(best)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--walk", action="append", choices=("compiled", "vectorized", "python"))
    parser.add_argument("--shape", action="append", choices=sorted(SHAPES))
    parser.add_argument("--ids-once", action="store_true")
    args = parser.parse_args()
    for walk in args.walk or ["python", "vectorized", "compiled"]:  # compiled last: it cannot be unloaded
        shapes = [s for s in (args.shape or DEFAULT_SHAPES) if not SHAPES[s].json]
        figures = measure(walk, shapes, args.ids_once)
        print(json.dumps({"walk": walk, "ids_once": args.ids_once, "ns_per_span": figures}))


if __name__ == "__main__":
    main()

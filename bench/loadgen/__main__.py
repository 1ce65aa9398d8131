"""``python -m bench.loadgen ...``: the ``tracetriage loadgen`` command on its own."""

from __future__ import annotations

import argparse

from bench.loadgen.cli import configure, main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="tracetriage loadgen",
                                     description="Generate traces of a microservice topology and send them over OTLP.")
    configure(parser)
    raise SystemExit(main(parser.parse_args()))

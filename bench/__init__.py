"""Tools beside the runtime: the benchmark harness (run, instructions, sender), the load generator (loadgen) and
the demo. They import the runtime (collector, pipelines); the runtime never imports them (tests/test_layout.py).
``tracetriage loadgen`` and ``tracetriage demo`` reach them by entry point (pyproject.toml, bench/commands.py)."""

"""Coverage-guided fuzzing (atheris, libFuzzer) of the code that reads untrusted input.

``targets.py`` holds one function per input the collector reads from outside: OTLP protobuf bytes (the wire
split and the compiled check), OTLP/JSON bodies, config files, and trace graphs for the root-cause and latency
walks. Each takes bytes and raises only when a contract is broken (an exception other than the documented
error type, or an answer that differs from protobuf's). Run one under atheris for as long as you like:

    .venv/bin/python -m tests.fuzz wire -max_total_time=600 fuzz-corpus/wire/

(any libFuzzer flag works; a crash leaves its input as crash-<hash> in the working directory, and
``python -m tests.fuzz wire crash-<hash>`` replays it). ``test_targets.py`` runs every target over its seeds
and, when atheris is installed (the ``test`` extra, Linux), a short bounded atheris run of each, so the
harness cannot rot. The property tests beside the code (``test_properties.py``) cover the same contracts
with hypothesis.
"""

"""``python -m tests.fuzz TARGET [libFuzzer flags] [corpus dirs or files]``: fuzz one target with atheris."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    try:
        import atheris
    except ImportError:
        print("atheris is not installed: pip install atheris (Linux, CPython 3.11+)", file=sys.stderr)
        return 2
    with atheris.instrument_imports(include=["collector", "pipelines"]):
        from tests.fuzz.targets import TARGETS
    if len(argv) < 2 or argv[1] not in TARGETS:
        print(f"usage: python -m tests.fuzz {{{','.join(TARGETS)}}} [libFuzzer flags] [corpus]", file=sys.stderr)
        return 2
    target = TARGETS[argv[1]]
    atheris.Setup([argv[0], *argv[2:]], target)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

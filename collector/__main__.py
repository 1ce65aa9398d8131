"""``python -m collector`` is the ``tracetriage`` command."""

from collector.cli import main

raise SystemExit(main())

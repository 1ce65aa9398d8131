"""Commands that packages beside the runtime add to ``tracetriage`` (``tracetriage demo``, ``tracetriage loadgen``).

A package publishes an object of the :class:`Command` shape under the entry-point group
``tracetriage.commands``; the entry point's name is the command's name::

    [project.entry-points."tracetriage.commands"]
    loadgen = "bench.commands:loadgen"

The CLI reads the names from the installed metadata, which imports nothing, and loads a command only when it
is asked for (``tracetriage --help`` loads each one for its help line). So the runtime never imports a tool:
a tool that is not installed costs nothing until someone asks for it, and then says so.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection
from importlib.metadata import EntryPoint, entry_points
from typing import Protocol, runtime_checkable

from collector.errors import TraceTriageError

ENTRY_POINT_GROUP = "tracetriage.commands"


@runtime_checkable
class Command(Protocol):
    """One ``tracetriage`` subcommand.

    Keep the object cheap to import: ``tracetriage --help`` loads it for ``help``. ``add_arguments`` runs only
    when the command is asked for, so it (and ``run``) may import the heavy parts.
    """

    name: str  # what follows ``tracetriage``; the same as the entry point's name
    help: str  # one line, for ``tracetriage --help``

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's options (and, if it likes, a description) to its own parser."""
        ...

    def run(self, args: argparse.Namespace) -> int:
        """Do the command with the parsed options; returns the exit code."""
        ...


class CommandUnavailable(TraceTriageError):
    """A command is declared by an installed package but cannot be loaded here."""

    def __init__(self, ep: EntryPoint, reason: str) -> None:
        self.name = ep.name
        self.reason = reason
        super().__init__(f"the {ep.name!r} command ({ep.value}, declared by {_provider(ep)}) cannot be loaded: "
                         f"{reason}")


def _provider(ep: EntryPoint) -> str:
    return f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else "an unknown package"


def discover(reserved: Collection[str] = ()) -> dict[str, EntryPoint]:
    """The installed commands by name, sorted, none of them imported.

    Names in ``reserved`` (the built-in commands) are skipped: a package cannot replace a built-in command.
    When two packages declare the same name, the first one found is kept.
    """
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in reserved:
            found.setdefault(ep.name, ep)
    return dict(sorted(found.items()))


def load(ep: EntryPoint) -> Command:
    """Import the command object of ``ep``; raises :class:`CommandUnavailable` saying why it cannot."""
    try:
        obj = ep.load()
    except ImportError as e:
        raise CommandUnavailable(ep, f"{e} (its package is not installed here)") from e
    except Exception as e:  # a broken command must not break the others or `tracetriage --help`
        raise CommandUnavailable(ep, f"{type(e).__name__}: {e}") from e
    if not isinstance(obj, Command):
        raise CommandUnavailable(ep, f"{type(obj).__name__} is not a command (name, help, add_arguments, run)")
    if obj.name != ep.name:
        raise CommandUnavailable(ep, f"the entry point is named {ep.name!r} but the command {obj.name!r}")
    return obj


def parser_for(ep: EntryPoint, prog: str) -> tuple[Command, argparse.ArgumentParser]:
    """Load the command of ``ep`` and build its parser (its options may import modules the package lacks)."""
    command = load(ep)
    parser = argparse.ArgumentParser(prog=prog)
    try:
        command.add_arguments(parser)
    except ImportError as e:
        raise CommandUnavailable(ep, f"{e} (a module it needs is not installed here)") from e
    return command, parser

"""Reading the Dockerfile: instructions with their continuation lines joined, exec-form arguments."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from tests.deploy.common import ROOT

DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest, continuation lines joined
    stage: int  # index of the FROM it belongs to (0-based)


def instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    out: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        keyword, _, rest = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, rest.strip(), stage))
    return out


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form ENTRYPOINT / CMD / HEALTHCHECK CMD (shell form is refused)."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(a, str) for a in value), args
    return value


def healthcheck() -> tuple[dict[str, str], list[str]]:
    """The HEALTHCHECK options (``--interval`` ...) and its exec-form command."""
    (hc,) = [i for i in instructions() if i.keyword == "HEALTHCHECK"]
    m = re.match(r"((?:--[a-z-]+=\S+\s+)*)CMD\s+(\[.*\])\s*$", hc.args)
    assert m, f"HEALTHCHECK must be `[--opt=value ...] CMD [exec form]`, got {hc.args!r}"
    options = dict(opt.lstrip("-").split("=", 1) for opt in shlex.split(m.group(1)))
    return options, exec_form(m.group(2))


def entrypoint_and_cmd() -> list[str]:
    last = instructions()[-1].stage
    (ep,) = [i for i in instructions() if i.keyword == "ENTRYPOINT" and i.stage == last]
    (cmd,) = [i for i in instructions() if i.keyword == "CMD" and i.stage == last]
    return exec_form(ep.args) + exec_form(cmd.args)

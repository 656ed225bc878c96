"""A real llama.cpp (llama-server, llama-bench) for the tests that talk to one.

INFITOOL_LLAMA_SERVER (and INFITOOL_LLAMA_BENCH) name existing binaries; otherwise
tools/build_llamacpp.sh builds them once from the llama-cpp-python sdist into
~/.cache/infitool-edit/llama.cpp/<version>/ and later runs find them there. The first run pays
the build (minutes: docs/kernels.md has the figure); INFITOOL_LLAMA_BUILD=0 turns it off. Where
llama.cpp cannot be had (no cmake, no compiler, no network to PyPI) the tests skip with one line;
a build that starts and fails is a failure, not a skip, so CI cannot hide a broken build.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from helpers import REPOSITORY

BUILD_SCRIPT = REPOSITORY / "tools" / "build_llamacpp.sh"
MISSING_PREREQUISITE = 3  # build_llamacpp.sh's exit status when cmake, a compiler or the sdist is missing


@dataclass(frozen=True)
class LlamaCpp:
    server: Path
    bench: Path | None


class Unavailable(Exception):
    """llama.cpp cannot be had on this machine; str() is the one-line reason (a skip)."""


class BuildFailed(Exception):
    """llama.cpp was named wrongly or its build failed; str() is one line (a failure)."""


def find_or_build() -> LlamaCpp:
    named = os.environ.get("INFITOOL_LLAMA_SERVER")
    if named:
        server = Path(named)
        if not server.is_file():
            raise BuildFailed(f"INFITOOL_LLAMA_SERVER={named} is not a file")
        bench = os.environ.get("INFITOOL_LLAMA_BENCH")
        return LlamaCpp(server, Path(bench) if bench else _sibling(server, "llama-bench"))
    if os.environ.get("INFITOOL_LLAMA_BUILD", "1") == "0":
        raise Unavailable("no llama-server: INFITOOL_LLAMA_BUILD=0 turns its build off "
                          "(or set INFITOOL_LLAMA_SERVER; docs/kernels.md)")
    # stdout carries the bin/ folder; stderr (what is downloaded and built, and why not) goes
    # to the terminal, so a first run's minutes of compiling are not a silent hang.
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHON": sys.executable})
    sys.stderr.write(result.stderr)
    reason = (result.stderr.strip().splitlines() or [f"{BUILD_SCRIPT.name} exited {result.returncode}"])[-1]
    if result.returncode == MISSING_PREREQUISITE:
        raise Unavailable(reason)
    if result.returncode != 0:
        raise BuildFailed(reason)
    folder = Path(result.stdout.strip().splitlines()[-1])
    return LlamaCpp(folder / "llama-server", _sibling(folder / "llama-server", "llama-bench"))


def _sibling(binary: Path, name: str) -> Path | None:
    sibling = binary.with_name(name)
    return sibling if sibling.is_file() else None

"""The command line: `infitool-edit DRAFT` opens the editor; the subcommands
apply scripts, show the history and move through it headlessly.

This module only translates arguments into calls on the core and the core's
errors into one line on stderr with exit code 1; the logic lives in
``infitool_edit.session`` and ``infitool_edit.history``. It is the only
module that imports Typer.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import pkgutil
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from infitool_edit import bench
from infitool_edit.commands import CommandError, script_lines
from infitool_edit.errors import expected_errors, one_line
from infitool_edit.history import History
from infitool_edit.session.editing import EditingSession
from infitool_edit.session.going_back import went_back

app = typer.Typer(
    name="infitool-edit",
    help="A terminal editor for writers in which a local model edits only through commands.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# readable=False: the session reports an unreadable draft in its own words.
DraftArg = Annotated[
    Path, typer.Argument(help="The markdown draft.", show_default=False, readable=False)
]
VersionArg = Annotated[
    str, typer.Argument(help="A version: 17, v17, or a checkpoint's name.", show_default=False)
]
AuthorOption = Annotated[str, typer.Option(help="Who the new versions are by.")]


def fail(message: str) -> typer.Exit:
    typer.echo(f"infitool-edit: {message}", err=True)
    return typer.Exit(1)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    # Errors a user can cause; each becomes one line and exit code 1.
    except expected_errors() as exc:
        raise fail(one_line(exc)) from None


def version_number(history: History, ref: str) -> int:
    """`17` and `v17` name a version; anything else, a checkpoint."""
    digits = ref[1:] if ref[:1] in ("v", "V") else ref
    if digits.isdigit():
        return int(digits)
    return history.find_checkpoint(ref)


@app.command()
def edit(
    draft: DraftArg,
    goal: Annotated[Optional[str], typer.Option(help="Start the model on this goal at once.")] = None,
    script: Annotated[
        Optional[Path],
        typer.Option(help="Let a command file play the model (the scripted backend).", readable=False),
    ] = None,
    rate: Annotated[Optional[float], typer.Option(help="The script's commands per second.")] = None,
    model: Annotated[
        Optional[Path], typer.Option(help="A checkpoint folder for the built-in SSM backend.", readable=False)
    ] = None,
    theme: Annotated[Optional[str], typer.Option(help="infitool-dark, infitool-light, or a theme file's name.")] = None,
) -> None:
    """Open the editor on DRAFT (also: `infitool-edit DRAFT`)."""
    # Imported here: Textual is only needed by this command.
    from infitool_edit.ui.app import run_editor

    with user_errors():
        run_editor(draft, goal=goal, script=script, rate=rate, model=model, theme=theme)


@app.command()
def apply(
    draft: DraftArg,
    script: Annotated[
        Path,
        typer.Argument(help="A file of commands, one per line.", show_default=False, readable=False),
    ],
    author: AuthorOption = "writer",
) -> None:
    """Apply a file of commands to DRAFT, one version each, printing the observations.
    The whole script is parsed first; the first command that fails stops it,
    keeping the versions before it."""
    with user_errors():
        try:
            numbered = list(script_lines(script.read_bytes()))
        except CommandError as exc:
            raise fail(f"{script}: {one_line(exc)}") from None
        with EditingSession.open(draft, author=author) as session:
            for number, command in numbered:
                try:
                    executed = session.execute(command)
                except expected_errors() as exc:
                    raise fail(f"{script}, line {number}: {one_line(exc)}") from None
                typer.echo(executed.observation)


@app.command()
def log(
    draft: DraftArg,
    limit: Annotated[int, typer.Option(help="How many of the newest versions to list.", min=1)] = 50,
) -> None:
    """List DRAFT's versions, newest first."""
    with user_errors(), History.open(draft) as history:
        versions = history.log(limit=limit)
    # One row per version, one line per row: long commands are cut with an
    # ellipsis (`show` prints a version in full); ★ marks a named checkpoint.
    # The branch is shown only once there are forks.
    forked = any(info.branch != "main" for info in versions)
    table = Table()
    table.add_column("version", no_wrap=True, min_width=7)
    table.add_column("author", no_wrap=True, max_width=16, overflow="ellipsis")
    table.add_column("command", overflow="ellipsis", min_width=24, ratio=1)
    table.add_column("time", no_wrap=True, min_width=19)
    if forked:
        table.add_column("line", no_wrap=True)
    for info in versions:
        version = f"v{info.number}" + (" ★" if info.checkpoint else "")
        command = table_cell(info.message, 72)
        when = datetime.fromtimestamp(info.time).strftime("%Y-%m-%d %H:%M:%S")
        row = [version, info.author, command, when] + ([info.branch] if forked else [])
        table.add_row(*row)
    Console().print(table)


def table_cell(text: str, width: int) -> Text:
    """``text`` cut to ``width`` cells with an ellipsis, never wrapped."""
    cell = Text(text, no_wrap=True, overflow="ellipsis")
    cell.truncate(width, overflow="ellipsis")
    return cell


@app.command()
def show(draft: DraftArg, version: VersionArg) -> None:
    """Print DRAFT as it was at VERSION."""
    with user_errors(), History.open(draft) as history:
        snapshot = history.read(version_number(history, version))
    sys.stdout.write(snapshot.draft)


@app.command()
def diff(draft: DraftArg, a: VersionArg, b: VersionArg) -> None:
    """Show how DRAFT changed from version A to version B (unified diff)."""
    with user_errors(), History.open(draft) as history:
        text = history.diff(version_number(history, a), version_number(history, b))
    sys.stdout.write(text)


@app.command()
def rewind(draft: DraftArg, version: VersionArg, author: AuthorOption = "writer") -> None:
    """Make DRAFT what it was at VERSION, as a new version (nothing is lost)."""
    with user_errors(), EditingSession.open(draft, author=author) as session:
        number = version_number(session.history, version)
        typer.echo(went_back(session, session.execute(f"rewind v{number}"), forked=False))


@app.command()
def fork(draft: DraftArg, version: VersionArg, author: AuthorOption = "writer") -> None:
    """Start a new line of DRAFT's history from VERSION."""
    with user_errors(), EditingSession.open(draft, author=author) as session:
        typer.echo(went_back(session, session.fork(version_number(session.history, version)), forked=True))


# --- the agent ------------------------------------------------------------------

ModelOption = Annotated[
    Optional[Path],
    typer.Option(help="A model checkpoint folder (default: the embedded model).", show_default=False),
]
MaxCommandsOption = Annotated[
    Optional[int], typer.Option(help="Stop after this many commands.", min=0, show_default=False)
]
SeedOption = Annotated[
    Optional[int],
    typer.Option(help="Seed of the model's sampling (default: 0, or the session's on resume).", show_default=False),
]
ScriptOption = Annotated[
    Optional[Path],
    typer.Option(help="Replay this command file instead of running a model.", show_default=False),
]
RateOption = Annotated[
    Optional[float], typer.Option(help="With --script: commands per second.", min=0.001, show_default=False)
]


ServerOption = Annotated[
    Optional[str],
    typer.Option(help="An OpenAI-compatible server (e.g. vLLM: http://host:8000/v1) instead of a local model.",
                 show_default=False),
]
ServerModelOption = Annotated[
    Optional[str], typer.Option(help="With --server: the served model's name.", show_default=False)
]


def _run_agent(draft, goal, max_commands, seed, **backend_options) -> None:
    # Imported here: torch loads in seconds, and the other commands need none of it.
    from infitool_edit.agent.headless import make_backend, run_headless

    with user_errors():
        backend = make_backend(**backend_options)
        run_headless(draft, goal, backend=backend, max_commands=max_commands, seed=seed)


@app.command()
def run(
    draft: DraftArg,
    goal: Annotated[str, typer.Option(help="What the model should do.", show_default=False)],
    model: ModelOption = None,
    max_commands: MaxCommandsOption = None,
    seed: SeedOption = None,
    script: ScriptOption = None,
    rate: RateOption = None,
    server: ServerOption = None,
    server_model: ServerModelOption = None,
) -> None:
    """Let the model edit DRAFT towards GOAL headlessly, printing the command stream."""
    _run_agent(draft, goal, max_commands, seed, model=model, script=script, rate=rate,
               server=server, server_model=server_model)


@app.command()
def resume(
    draft: DraftArg,
    model: ModelOption = None,
    max_commands: MaxCommandsOption = None,
    seed: SeedOption = None,
    script: ScriptOption = None,
    rate: RateOption = None,
    server: ServerOption = None,
    server_model: ServerModelOption = None,
) -> None:
    """Continue DRAFT's agent session where it stopped."""
    _run_agent(draft, None, max_commands, seed, model=model, script=script, rate=rate,
               server=server, server_model=server_model)


def bench_suites() -> list[str]:
    return sorted(module.name for module in pkgutil.iter_modules(bench.__path__))


@app.command(name="bench")
def run_bench(
    suite: Annotated[str, typer.Argument(help="Which suite, e.g. core.", show_default=False)],
) -> None:
    """Run a benchmark suite; its last output line is one JSON object of figures."""
    suites = bench_suites()
    module = importlib.import_module(f"{bench.__name__}.{suite}") if suite in suites else None
    if module is None or not callable(getattr(module, "main", None)):
        raise fail(f"unknown benchmark suite {suite!r} (available: {', '.join(suites) or 'none'})")
    typer.echo(json.dumps(module.main()))


def _route_bare_draft(args: list[str]) -> list[str]:
    """`infitool-edit DRAFT` means `infitool-edit edit DRAFT` (a draft named like
    a subcommand still opens with `infitool-edit edit NAME`)."""
    commands = {command.name or command.callback.__name__ for command in app.registered_commands}
    if args and not args[0].startswith("-") and args[0] not in commands:
        return ["edit", *args]
    return args


def main(argv: list[str] | None = None) -> None:
    args = _route_bare_draft(list(sys.argv[1:] if argv is None else argv))
    try:
        app(args=args, prog_name="infitool-edit")
    except KeyboardInterrupt:
        typer.echo("infitool-edit: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug, not the user's fault: still one line, never a traceback
        typer.echo(f"infitool-edit: internal error: {type(exc).__name__}: {exc}".splitlines()[0], err=True)
        sys.exit(1)

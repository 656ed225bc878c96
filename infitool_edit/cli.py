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
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer
from rich.console import Console
from rich.table import Table

from infitool_edit import bench
from infitool_edit.agent.default_model import default_model_description
from infitool_edit.commands import CommandError, script_lines
from infitool_edit.errors import expected_errors, one_line
from infitool_edit.history import History, HistoryError
from infitool_edit.session.editing import EditingSession
from infitool_edit.session.going_back import went_back
from infitool_edit.session.version_log import version_table

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
AttentionWindowOption = Annotated[
    Optional[int],
    typer.Option(help="Tokens a hybrid model's attention layers keep (Granite-4.0-H; default: the "
                      "folder's own window, else 8192). "
                      "Beyond the window the model relies on its tools (read, outline, notes).",
                 min=1, show_default=False),
]

QuantizeOption = Annotated[
    Optional[str],
    typer.Option(help="Decode a local model with int8 or 4-bit (q4) weights: a quarter or about a seventh "
                      "of fp32's bytes read per token, so faster on a CPU, with logits close to fp32's "
                      "(`bench model` measures both). Each layer is quantized as it is read.",
                 show_default=False),
]


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
    # ASCII digits only: str.isdigit() takes '٣' and '³' too.
    # A checkpoint whose name is all digits ("17") wins over the version
    # number when one exists; `v17` always means version 17.
    if ref[:1] not in ("v", "V") and ref.isascii() and ref.isdigit():
        try:
            return history.find_checkpoint(ref)
        except HistoryError:
            return int(ref)
    digits = ref[1:] if ref[:1] in ("v", "V") else ref
    if digits.isascii() and digits.isdigit():
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
        Optional[str], typer.Option(help="A checkpoint folder, or a hub id in the local Hugging Face cache.")
    ] = None,
    theme: Annotated[Optional[str], typer.Option(help="infitool-dark, infitool-light, or a theme file's name.")] = None,
    attention_window: AttentionWindowOption = None,
    quantize: QuantizeOption = None,
) -> None:
    """Open the editor on DRAFT (also: `infitool-edit DRAFT`)."""
    # Imported here: Textual is only needed by this command.
    from infitool_edit.ui.app import run_editor

    with user_errors():
        run_editor(draft, goal=goal, script=script, rate=rate, model=model, theme=theme,
                   attention_window=attention_window, quantize=quantize)


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
    console = Console()
    console.print(version_table(versions, console.width))


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


@app.command()
def repair(draft: DraftArg) -> None:
    """Rebuild DRAFT's history refs and index from the commits git still holds."""
    from infitool_edit.history.repair import repair as repair_history

    with user_errors():
        typer.echo(repair_history(draft))


# --- the agent ------------------------------------------------------------------

ModelOption = Annotated[
    Optional[str],
    typer.Option(help="A checkpoint folder, or a hub id (org/name) in the local Hugging Face cache "
                      f"(default: the {default_model_description()}).", show_default=False),
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
ServerApiOption = Annotated[
    str, typer.Option(help="With --server: chat (instruct models), completions (base models), or auto "
                           "(chat unless a llama.cpp server's model has no chat template).")
]


LargeDeletionsOption = Annotated[
    Optional[str],
    typer.Option(help="Before a command that would delete over 20% of the draft's words: ask (on a terminal), "
                      "allow, or refuse (the model reads that it was refused). Default: ask on a terminal, "
                      "else refuse; with --script, allow.", show_default=False),
]


def _run_agent(draft, goal, max_commands, seed, large_deletions=None, **backend_options) -> None:
    # Imported here: torch loads in seconds, and the other commands need none of it.
    from infitool_edit.agent.headless import LARGE_DELETION_CHOICES, make_backend, run_headless

    if large_deletions is not None and large_deletions not in LARGE_DELETION_CHOICES:
        raise fail(f"--large-deletions is one of {', '.join(LARGE_DELETION_CHOICES)}, not {large_deletions!r}")
    if large_deletions is None and backend_options.get("script") is not None:
        large_deletions = "allow"  # a script's commands are the writer's own
    with user_errors():
        backend = make_backend(**backend_options)
        run_headless(draft, goal, backend=backend, max_commands=max_commands, seed=seed,
                     large_deletions=large_deletions)


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
    server_api: ServerApiOption = "auto",
    attention_window: AttentionWindowOption = None,
    quantize: QuantizeOption = None,
    large_deletions: LargeDeletionsOption = None,
) -> None:
    """Let the model edit DRAFT towards GOAL headlessly, printing the command stream."""
    _run_agent(draft, goal, max_commands, seed, large_deletions, model=model, script=script, rate=rate,
               server=server, server_model=server_model, server_api=server_api,
               attention_window=attention_window, quantize=quantize)


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
    server_api: ServerApiOption = "auto",
    attention_window: AttentionWindowOption = None,
    quantize: QuantizeOption = None,
    large_deletions: LargeDeletionsOption = None,
) -> None:
    """Continue DRAFT's agent session where it stopped."""
    _run_agent(draft, None, max_commands, seed, large_deletions, model=model, script=script, rate=rate,
               server=server, server_model=server_model, server_api=server_api,
               attention_window=attention_window, quantize=quantize)


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="The training data folder (prose.jsonl, streams.jsonl).")],
    out: Annotated[Path, typer.Option(help="Where checkpoints go (OUT/latest).")],
    config: Annotated[str, typer.Option(help="default, deep (twice its layers; grows --from weights), hybrid (one attention "
                                                  "layer and SwiGLUs; converts --from weights), or smoke (about a minute).")] = "default",
    resume: Annotated[bool, typer.Option("--resume", help="Go on from OUT/latest.")] = False,
    phase: Annotated[str, typer.Option(help="auto, prose or streams (switch phase now).")] = "auto",
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default 2).")] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Stop after this many steps.")] = None,
    max_minutes: Annotated[Optional[float], typer.Option(help="Stop after this many minutes.")] = None,
    prose_mb: Annotated[Optional[float], typer.Option(help="Phase 1 budget in MB read.")] = None,
    streams_mb: Annotated[Optional[float], typer.Option(help="Phase 2 budget in MB read.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate (lower it to go on from a finished run).")] = None,
    prose_mix: Annotated[Optional[float], typer.Option(help="Share of phase 2 batches read from prose.jsonl (default 0.2).")] = None,
    decisions: Annotated[Optional[float], typer.Option(help="Share of phase 2 windows at a stream's first command, its decision about the goal (default 0; up to 0.5).")] = None,
    new_schedule: Annotated[bool, typer.Option("--new-schedule", help="With --resume: start the phase's budget, warm-up and cosine afresh (fine-tuning on new data).")] = False,
    start_from: Annotated[Optional[Path], typer.Option("--from", help="Start OUT from these weights (e.g. model/weights): fresh optimizer and schedule, its training.json's counters carried.")] = None,
) -> None:
    """Train the byte-level model: prose first, then the editor's command streams (torchrun for several GPUs)."""
    from infitool_edit.learn.dataset import DataError
    from infitool_edit.learn.train import TrainError, TrainOptions, train as run_training
    from infitool_edit.model import CheckpointError

    options = TrainOptions(data=data, out=out, config=config, resume=resume, phase=phase, threads=threads,
                           max_steps=max_steps, max_minutes=max_minutes, prose_mb=prose_mb, streams_mb=streams_mb, lr=lr,
                           prose_mix=prose_mix, decisions=decisions, new_schedule=new_schedule, start_from=start_from)
    try:
        summary = run_training(options)
    except (DataError, TrainError, CheckpointError, OSError) as error:
        raise fail(one_line(error)) from None
    typer.echo(json.dumps(summary))


@app.command()
def merge(
    base: Annotated[Path, typer.Argument(help="The checkpoint the fine-tuning started from (e.g. model/weights).")],
    tuned: Annotated[Path, typer.Argument(help="The fine-tuned checkpoint (e.g. OUT/latest).")],
    out: Annotated[Path, typer.Option(help="Where the merged checkpoint goes.")],
    share: Annotated[float, typer.Option(help="The tuned weights' share, 0 to 1: (1 - share) * BASE + share * TUNED.")] = 0.5,
) -> None:
    """Merge a fine-tuned checkpoint with the weights it started from, tensor by tensor (WiSE-FT): keep a lesson and what it wore away; choose the share with eval."""
    from infitool_edit.learn.merge import MergeError, merge as merge_checkpoints

    try:
        record = merge_checkpoints(base, tuned, share, out)
    except (MergeError, OSError) as error:
        raise fail(one_line(error)) from None
    typer.echo(json.dumps(record))


def bench_suites() -> list[str]:
    return sorted(module.name for module in pkgutil.iter_modules(bench.__path__) if not module.name.startswith("_"))


@app.command(name="bench")
def run_bench(
    suite: Annotated[str, typer.Argument(help="Which suite, e.g. core.", show_default=False)],
    llamacpp: Annotated[Path | None, typer.Option(help="bench model: compare with this llama-bench binary.")] = None,
) -> None:
    """Run a benchmark suite; its last output line is one JSON object of figures."""
    suites = bench_suites()
    module = importlib.import_module(f"{bench.__name__}.{suite}") if suite in suites else None
    if module is None or not callable(getattr(module, "main", None)):
        raise fail(f"unknown benchmark suite {suite!r} (available: {', '.join(suites) or 'none'})")
    if llamacpp is not None and suite != "model":
        raise fail("--llamacpp is an option of `bench model` only")
    if llamacpp is None:
        typer.echo(json.dumps(module.main()))
        return
    from infitool_edit.bench._llamacpp import LlamaCppError

    try:
        typer.echo(json.dumps(module.main(llamacpp=llamacpp)))
    except (LlamaCppError, ImportError) as error:  # no such binary, no gguf package, a tool that failed
        raise fail(str(error).splitlines()[0]) from None


@app.command(name="inspect")
def inspect_checkpoint(
    folder: Annotated[Path, typer.Argument(help="A downloaded checkpoint folder.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object instead of lines.")] = False,
) -> None:
    """Say what a checkpoint folder is (architecture, parameters, memory, tokenizer, chat
    template) and what would be refused, reading no weights. Exit code 1 if anything would be."""
    from infitool_edit.model import CheckpointError
    from infitool_edit.model.inspect import inspect_folder

    try:
        report = inspect_folder(folder)
    except CheckpointError as exc:
        raise fail(one_line(exc)) from None
    typer.echo(json.dumps(report.to_dict()) if as_json else "\n".join(report.lines()))
    if not report.loads:
        raise typer.Exit(1)


@app.command()
def pull(
    hub_id: Annotated[str, typer.Argument(help="A hub id, e.g. fla-hub/rwkv7-1.5B-g1.", show_default=False)],
) -> None:
    """Download a model into the local Hugging Face cache (needs a network; once)."""
    from infitool_edit.agent.hub import pull as download

    with user_errors():
        folder = download(hub_id)
    typer.echo(f"{hub_id}: {folder}")
    typer.echo(f"use it with: infitool-edit DRAFT --model {hub_id}")


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per model instead of a table.")] = False,
) -> None:
    """The instruct state-space models a writer can run: size, licence, memory, whether cached."""
    from infitool_edit.agent.hub import cache_dir, catalogue_rows, gigabytes

    rows = catalogue_rows()
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row.to_dict()))
        return
    table = Table(title=f"Models (cache: {cache_dir()})")
    for column in ("model", "params", "licence", "CPU fp32", "CPU int8", "GPU bf16", "cached", "use", "for"):
        table.add_column(column, no_wrap=column in ("model", "use"))
    for row in rows:
        params = f"{row.parameters / 1e9:.2f} B" + ("" if row.folder else " *")
        table.add_row(row.model.hub_id, params, row.model.licence, gigabytes(row.cpu_fp32), gigabytes(row.cpu_int8),
                      gigabytes(row.gpu_bf16), "yes" if row.folder else "no", row.use, row.model.machine)
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    typer.echo("Memory of the weights, computed from the parameter count (* nominal: from the hub id and "
               "model card; a cached model's count is read from its tensor headers). Add the state and, for "
               "Granite, the attention window's cache.")


# --- learning: training data and evaluation (logic in infitool_edit.learn) ---------


@app.command()
def traces(
    repo: Annotated[Path, typer.Argument(help="A git repository (or a clone of a bundle).", show_default=False)],
    out: Annotated[Path, typer.Option(help="Folder for streams.jsonl and traces.json.", show_default=False)],
    glob: Annotated[Optional[list[str]], typer.Option(help="Files to follow (repeatable; default *.md, *.rst).")] = None,
    split: Annotated[str, typer.Option(help="all, train or heldout files.")] = "all",
    jobs: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
    limit: Annotated[Optional[int], typer.Option(help="At most this many pairs per worker.", min=1)] = None,
) -> None:
    """Turn every revision of REPO's prose files into a checked editing session."""
    from infitool_edit.learn.traces import TraceError, write_traces

    try:
        summary = write_traces(repo, tuple(glob or ("*.md", "*.rst")), out, split=split, jobs=jobs, limit=limit)
    except TraceError as exc:
        raise fail(str(exc)) from None
    for failure in summary["failures"]:
        typer.echo(f"replay failure: {failure}", err=True)
    typer.echo(json.dumps({k: v for k, v in summary.items() if k != "failures"}))
    if summary["replay failures"]:
        raise typer.Exit(1)


@app.command()
def prepare(
    out: Annotated[Path, typer.Option(help="The training folder to build (or finish).", show_default=False)],
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    streams: Annotated[int, typer.Option(help="Command streams to make.", min=1)] = 20_000,
    jobs: Annotated[Optional[int], typer.Option(help="Worker processes (default: one per core).", min=1)] = None,
    merge_only: Annotated[bool, typer.Option("--merge-only", help="Build nothing more: make the folder from the shards already finished.")] = False,
    mix: Annotated[Optional[str], typer.Option(help="Shares by task kind instead of the default mix, e.g. typos=4800,mechanics=2800,clean=3200,structure=8000 (traces, and the real-commit lessons realtypos, decline and realdrafts, only if named).")] = None,
    copy_drill: Annotated[float, typer.Option(help="MB of copy drills (goals whose names commands copy) added to prose.jsonl; see train --prose-mix.", min=0)] = 0.0,
) -> None:
    """Build a training folder from the TRAIN split: prose.jsonl, streams.jsonl, manifest.json."""
    from infitool_edit.learn.corpus import CorpusError
    from infitool_edit.learn.prepare import PrepareError, parse_mix
    from infitool_edit.learn.prepare import prepare as build

    def shown(summary: dict) -> None:
        typer.echo(f"{summary['shard']}: {summary.get('streams', 0)} streams in {summary['seconds']} s", err=True)

    try:
        shares = None if mix is None else parse_mix(mix)
        manifest = build(out, streams=streams, seed=seed, jobs=jobs, progress=shown, merge_only=merge_only, mix=shares,
                         copy_drill_mb=copy_drill)
    except (CorpusError, PrepareError) as exc:
        raise fail(str(exc)) from None
    typer.echo(json.dumps({k: manifest[k] for k in ("counts", "traces", "replay_failures", "seconds")}))


@app.command(name="eval")
def eval_(
    model: ModelOption = None,
    suite: Annotated[Optional[list[str]], typer.Option(help="typos, mechanics, structure, revisions, clean, asks (repeatable; default all).")] = None,
    prose: Annotated[Optional[Path], typer.Option(help="Build the synthetic suites from this folder of markdown.")] = None,
    revisions: Annotated[Optional[Path], typer.Option(help="Build the revisions suite from this git repository.")] = None,
    tasks: Annotated[int, typer.Option(help="Tasks per suite.", min=1)] = 20,
    seed: Annotated[Optional[list[int]], typer.Option(help="Seed of the tasks and of the model's sampling (default 0); repeat it to pool several seeds' tasks into each suite, e.g. --seed 13 --seed 14.")] = None,
    expert: Annotated[bool, typer.Option("--expert", help="Score the tasks' own expert sessions instead (a check of the checkers).")] = False,
    quantize: QuantizeOption = None,
) -> None:
    """Measure the model on held-out editing tasks, beside the copy and dictionary baselines."""
    from infitool_edit.learn.corpus import CorpusError
    from infitool_edit.learn.evaluate import SUITES, EvalError, evaluate, expert_backend, tables

    if expert:
        system, factory = "expert", expert_backend
    else:
        from infitool_edit.agent.headless import make_backend
        from infitool_edit.agent.ssm import quantized_name

        system = quantized_name(Path(model).name if model is not None else "built-in", quantize)
        factory = lambda task: make_backend(model=model, quantize=quantize)  # noqa: E731  a fresh state per task
    console = Console(stderr=True)
    try:
        report = evaluate(suite or SUITES, make_backend=factory, system=system, tasks=tasks, seed=seed or [0],
                          prose=prose, revisions=revisions)
    except (EvalError, CorpusError, *expected_errors()) as exc:
        raise fail(one_line(exc)) from None
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    for table in tables(report):
        out.print(table)
    typer.echo(json.dumps(report.figures()))


def _route_bare_draft(args: list[str]) -> list[str]:
    """`infitool-edit DRAFT` means `infitool-edit edit DRAFT` (a draft named like
    a subcommand still opens with `infitool-edit edit NAME`)."""
    commands = {command.name or command.callback.__name__ for command in app.registered_commands}
    if args and not args[0].startswith("-") and args[0] not in commands:
        return ["edit", *args]
    return args


def _print_warnings() -> None:
    """The core's warnings (``logging`` under ``infitool_edit``), one line each on stderr."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("infitool-edit: %(message)s"))
    logger = logging.getLogger("infitool_edit")
    logger.addHandler(handler)
    logger.propagate = False


def main(argv: list[str] | None = None) -> None:
    _print_warnings()
    args = _route_bare_draft(list(sys.argv[1:] if argv is None else argv))
    try:
        app(args=args, prog_name="infitool-edit")
    except KeyboardInterrupt:
        typer.echo("infitool-edit: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug, not the user's fault: still one line, never a traceback
        typer.echo(f"infitool-edit: internal error: {type(exc).__name__}: {exc}".splitlines()[0], err=True)
        sys.exit(1)

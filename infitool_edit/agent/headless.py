"""Running the agent without the editor: ``infitool-edit run`` and ``resume``.

Chooses the backend from the options, runs the loop on the calling thread,
and prints the stream as it grows: the model's command as it is typed, then
the observation it gets back.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from infitool_edit.agent.backend import Backend, check_quantize
from infitool_edit.agent.deletion_guard import Answer, LargeDeletion
from infitool_edit.agent.events import (
    CommandApplied,
    CommandFailed,
    CommandStarted,
    Event,
    Finished,
    TokenDecided,
)
from infitool_edit.agent.hub import resolve_model
from infitool_edit.agent.remote import RemoteBackend
from infitool_edit.agent.runner import AgentError, Runner, check_goal
from infitool_edit.agent.scripted import ScriptedBackend
from infitool_edit.agent.ssm import SSMBackend, default_model, load_model, quantized_name
from infitool_edit.session.editing import EditingSession

OBSERVATION_PREVIEW_LINES = 6


def make_backend(
    *,
    model: str | Path | None = None,
    script: Path | None = None,
    rate: float | None = None,
    server: str | None = None,
    server_model: str | None = None,
    server_api: str = "auto",
    attention_window: int | None = None,
    quantize: str | None = None,
) -> Backend:
    """A scripted backend for ``script``, else the model ``server_model`` on
    ``server``, else the model in ``model`` (a folder or a cached hub id), else the default model
    (see ``ssm.default_model``: the trained built-in model, or random weights if none is installed).
    ``attention_window``: the tokens a hybrid model's attention layers keep (Granite-4.0-H); other
    models have none to bound. ``quantize``: ``"int8"`` or ``"q4"``, a local model decodes with
    int8 or 4-bit weights (``ssm.load_model``)."""
    check_quantize(quantize, script=script, server=server)
    if (server is None) != (server_model is None):
        raise AgentError("--server and --server-model go together: the server's URL and the model it serves")
    if script is not None:
        return ScriptedBackend(script, rate=rate)
    if server is not None:
        return RemoteBackend(server, server_model, api=server_api)
    if model is not None:
        folder, name = resolve_model(model)  # a folder, or a hub id found in the local cache
        loaded, tokenizer = load_model(folder, attention_window=attention_window, quantize=quantize)
        return make_ssm_backend(loaded, tokenizer, folder, name=quantized_name(name, quantize))
    default, name, decoding = default_model(quantize)
    return SSMBackend(default, name=name, **decoding_options(decoding))


def decoding_options(decoding) -> dict:
    """SSMBackend's keyword arguments for a checkpoint's ``Decoding``."""
    return dict(temperature=decoding.temperature, top_p=decoding.top_p, copy_prior=decoding.copy_prior,
                min_address_p=decoding.min_address_p, min_plan_p=decoding.min_plan_p)


def make_ssm_backend(model, tokenizer, folder: Path | str, *, name: str | None = None) -> Backend:
    """The built-in backend for a loaded checkpoint: prompted mode (the session as a conversation in
    the folder's chat template, agent/prompted.py) when the folder has a template, else the raw
    stream, unchanged. Tokens are chosen as the folder's ``generation_config.json`` says."""
    from infitool_edit.agent.chat_template import ChatTemplate
    from infitool_edit.model.sampling import Decoding

    name = name or Path(folder).name
    decoding = Decoding.from_folder(folder)  # the checkpoint's own generation_config.json
    options = dict(tokenizer=tokenizer, name=name, **decoding_options(decoding))
    template = ChatTemplate.from_folder(folder)
    if template is None:
        return SSMBackend(model, **options)
    from infitool_edit.agent.prompted import PromptedBackend

    return PromptedBackend(model, template=template, model_folder=folder, **options)


class StreamPrinter:
    """Prints events as the stream they stand for."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False)

    def __call__(self, event: Event) -> None:
        out = self.console
        if isinstance(event, CommandStarted):
            out.print("[bold cyan]> [/]", end="")
        elif isinstance(event, TokenDecided):
            out.print(escape(event.text), end="", style="cyan")
        elif isinstance(event, CommandApplied):
            out.print()
            lines = event.observation.splitlines()
            shown = lines[:OBSERVATION_PREVIEW_LINES]
            if len(lines) > len(shown):
                shown.append(f"… {len(lines) - len(shown)} more lines")
            out.print(escape("\n".join(shown)), style="dim")
        elif isinstance(event, CommandFailed):
            out.print()
            out.print(escape(f"@error {event.message}"), style="red")
        elif isinstance(event, Finished):
            out.print(escape(f"finished: {event.summary}"), style="bold green")


LARGE_DELETION_CHOICES = ("ask", "allow", "refuse")


def large_deletion_answerer(choice: str | None, console: Console | None = None,
                            read: Callable[[str], str] = input) -> Callable[[LargeDeletion], Answer] | None:
    """How a headless run answers before a large deletion (``--large-deletions``):
    ``ask`` prompts on the terminal, ``refuse`` refuses every one (the model
    reads why), ``allow`` never asks. None: ask when stdin is a terminal,
    else refuse (nobody is there to answer, and nothing is lost by refusing)."""
    if choice is None:
        choice = "ask" if sys.stdin.isatty() else "refuse"
    if choice == "allow":
        return None
    if choice == "refuse":
        return lambda question: Answer.REFUSE
    out = console or Console(highlight=False)

    def ask(question: LargeDeletion) -> Answer:
        out.print()
        out.print(escape(f"The model asks: {question.describe()}:"), style="bold yellow")
        out.print(escape(question.removed), style="dim")
        while True:
            try:
                reply = read("allow it? [a]llow / [r]efuse: ").strip().lower()
            except EOFError:
                return Answer.REFUSE
            if reply in ("a", "allow", "y", "yes"):
                return Answer.ALLOW
            if reply in ("r", "refuse", "n", "no", ""):
                return Answer.REFUSE

    return ask


def run_headless(
    draft: Path,
    goal: str | None,
    *,
    backend: Backend,
    max_commands: int | None = None,
    seed: int | None = None,
    console: Console | None = None,
    large_deletions: str | None = None,
) -> None:
    """Run (``goal`` given) or resume (``goal`` None) the agent on ``draft``;
    ``large_deletions``: see ``large_deletion_answerer``."""
    check_goal(goal)
    answer = large_deletion_answerer(large_deletions, console)
    with EditingSession.open(draft, author="writer") as session:
        runner = Runner(session, backend, goal, max_commands=max_commands, seed=seed,
                        ask_before_deleting=answer)
        runner.run(StreamPrinter(console))

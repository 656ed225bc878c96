"""The `infitool-edit` command's first moments: the editor's screen before
the heavy imports.

Importing the command line (Typer), the session (the document engine,
tree-sitter, numpy, git) and later torch takes seconds on a busy machine.
So the entry point is this small module. The writer's usual command,
`infitool-edit DRAFT` (or `edit DRAFT`) with no options, goes straight to
the editor without the command line's parser: the editor imports only
Textual and its panes, paints the draft as its file holds it, and opens
the session (and names the model) in a thread after that first frame
(``ui/app.py``). Anything else goes through the command line as before.

While Python loads it says so at once, keeps the keys typed meanwhile from
being echoed (and drops them before the editor starts, so they neither
reach the shell nor land in the draft unseen).
"""

from __future__ import annotations

import os
import sys

# Every subcommand of cli.py (tests/ui/test_ui_launch.py holds the two lists
# equal): a first argument named like one is not a draft.
SUBCOMMANDS = {"apply", "bench", "diff", "edit", "eval", "fork", "inspect", "log", "merge", "models", "prepare",
               "pull", "repair", "resume", "rewind", "run", "show", "traces", "train"}
NOT_DRAFTS = (SUBCOMMANDS - {"edit"}) | {"--help", "-h", "--version", "--install-completion",
                                        "--show-completion"}


def _opens_a_draft(args: list[str]) -> str | None:
    """The draft's name when these arguments open the editor."""
    if not args:
        return None
    if args[0] == "edit":
        args = args[1:]
    if args and args[0] not in NOT_DRAFTS and not args[0].startswith("-"):
        return os.path.basename(args[0])
    return None


def plain_draft(args: list[str]) -> str | None:
    """The draft's path when the arguments are that alone (`DRAFT`, `edit
    DRAFT`): the editor opens without the command line's parser."""
    if args[:1] == ["edit"]:
        args = args[1:]
    if len(args) == 1 and _opens_a_draft(args) is not None and args[0] != "edit":
        return args[0]
    return None


def _print_warnings() -> None:
    """The core's warnings (``logging`` under ``infitool_edit``), one line each
    on stderr, as ``cli.main`` sets them up."""
    import logging

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("infitool-edit: %(message)s"))
    logger = logging.getLogger("infitool_edit")
    logger.addHandler(handler)
    logger.propagate = False


def open_editor(draft: str) -> None:
    """`infitool-edit DRAFT`: the editor, its errors one line each as the command line's are."""
    from infitool_edit.errors import expected_errors, one_line
    from infitool_edit.ui.app import run_editor

    _print_warnings()
    try:
        run_editor(draft)
    except expected_errors() as error:
        sys.stderr.write(f"infitool-edit: {one_line(error)}\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write("infitool-edit: interrupted\n")
        sys.exit(130)
    except Exception as error:  # a bug, not the user's fault: still one line, never a traceback
        sys.stderr.write(f"infitool-edit: internal error: {type(error).__name__}: {error}".splitlines()[0] + "\n")
        sys.exit(1)


def main() -> None:
    draft = _opens_a_draft(sys.argv[1:])
    saved = None
    if draft is not None and sys.stdin.isatty() and sys.stderr.isatty():
        sys.stderr.write(f"infitool-edit: opening {draft}…\r\n")
        sys.stderr.flush()
        try:
            import termios

            saved = termios.tcgetattr(sys.stdin.fileno())
            quiet = termios.tcgetattr(sys.stdin.fileno())
            quiet[3] &= ~(termios.ECHO | termios.ICANON)
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSANOW, quiet)
        except (ImportError, OSError):
            saved = None
    plain = plain_draft(sys.argv[1:])
    try:
        if plain is None:
            from infitool_edit import cli
        if draft is not None:
            import infitool_edit.ui.app  # noqa: F401  (the editor's imports, while the line above shows)
    finally:
        if saved is not None:
            import termios

            # What was typed while loading is dropped, and the terminal is as it was
            # (Textual restores what it finds when it starts).
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSAFLUSH, saved)
    if plain is not None:
        open_editor(plain)
    else:
        cli.main()


if __name__ == "__main__":
    main()

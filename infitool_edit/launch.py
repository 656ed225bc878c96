"""The `infitool-edit` command's first moments: a sign of life before the
heavy imports.

Importing the command line, Textual and the session takes seconds on a
busy machine (and torch more, later, when a model loads). So the entry
point is this small module: when it is about to open a draft in a
terminal it says so at once, keeps the keys typed meanwhile from being
echoed (and drops them before the editor starts, so they neither reach
the shell nor land in the draft unseen), then imports the rest.
"""

from __future__ import annotations

import os
import sys

NOT_DRAFTS = {"apply", "log", "show", "diff", "rewind", "fork", "run", "resume", "bench",
              "--help", "-h", "--version", "--install-completion", "--show-completion"}


def _opens_a_draft(args: list[str]) -> str | None:
    """The draft's name when these arguments open the editor."""
    if not args:
        return None
    if args[0] == "edit":
        args = args[1:]
    if args and args[0] not in NOT_DRAFTS and not args[0].startswith("-"):
        return os.path.basename(args[0])
    return None


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
    try:
        from infitool_edit import cli

        if draft is not None:
            import infitool_edit.ui.app  # noqa: F401  (the editor's imports, while the line above shows)
    finally:
        if saved is not None:
            import termios

            # What was typed while loading is dropped, and the terminal is as it was
            # (Textual restores what it finds when it starts).
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSAFLUSH, saved)
    cli.main()


if __name__ == "__main__":
    main()

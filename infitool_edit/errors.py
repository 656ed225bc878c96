"""The one root of every error a writer, a script or a model can cause, and
the one way such an error is shown.

Each package keeps its own root (``CommandError``, ``ApplyError``,
``HistoryError``, ``DraftError``, ``AgentError``, ``ModelError``, …) and each
of those derives from ``InfitoolError``, so the edges (the app, the runner,
the CLI, the headless loop) catch one class and print it with ``one_line``.
This module imports nothing of the project: every package may import it.
"""

from __future__ import annotations


class InfitoolError(Exception):
    """Something the user (or the model) can get wrong; ``str()`` is one line."""

    def __str__(self) -> str:
        text = super().__str__()
        return text.splitlines()[0] if text.strip() else type(self).__name__


def expected_errors() -> tuple[type[BaseException], ...]:
    """The errors that end in one line rather than a traceback: the root
    and the operating system's (an unwritable file, a name too long)."""
    return (InfitoolError, OSError)


def one_line(error: BaseException) -> str:
    """The one line an error is shown as, everywhere."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    text = str(error)
    return text.splitlines()[0] if text.strip() else type(error).__name__

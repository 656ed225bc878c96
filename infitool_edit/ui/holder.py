"""Who holds the pen. Its own module: the app needs it before its first
frame, and the pen's module imports the command language (which the first
frame does not need)."""

from __future__ import annotations

from enum import StrEnum


class Holder(StrEnum):
    """Who holds the pen: the writer or the model (never both)."""

    WRITER = "writer"
    MODEL = "model"

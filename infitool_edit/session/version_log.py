"""What `infitool-edit log` prints: one row per version, one line per row,
fitting the terminal's width (80 columns included).

The columns that must stay whole (the version, its time, the line of history
when there are forks) keep their width; the author is cut at 14 cells and the
command takes what is left, cut with an ellipsis (`show` prints a version in
full). No outer border: at 80 columns those 4 cells are the command's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich import box
from rich.cells import cell_len, set_cell_size
from rich.table import Table
from rich.text import Text

from infitool_edit.history import VersionInfo

AUTHOR_WIDTH = 14
LINE_WIDTH = 12
MIN_COMMAND_WIDTH = 12
GAP = 2  # cells between two columns: one of padding, then the (blank) column divider


def when(timestamp: float, now: datetime | None = None) -> str:
    """Today's versions by the time alone; older ones with the date."""
    moment = datetime.fromtimestamp(timestamp)
    today = (now or datetime.now()).date()
    return moment.strftime("%H:%M:%S") if moment.date() == today else moment.strftime("%Y-%m-%d %H:%M")


def version_table(versions: Sequence[VersionInfo], width: int, now: datetime | None = None) -> Table:
    """The table of ``versions`` (newest first) in ``width`` cells; ★ marks a
    named checkpoint, and the line of history is shown only once there are forks."""
    forked = any(info.branch != "main" for info in versions)
    rows = []
    for info in versions:
        row = [f"v{info.number}" + (" ★" if info.checkpoint else "")]
        if forked:
            row.append(_cut(info.branch, LINE_WIDTH))
        # The command is one line: a message's later lines never wrap the row.
        row += [_cut(info.author, AUTHOR_WIDTH), when(info.time, now),
                info.message.splitlines()[0] if info.message else ""]
        rows.append(row)
    headers = ["version"] + (["line"] if forked else []) + ["author", "time", "command"]
    # Every column but the command keeps its width; the command gets the rest
    # (Rich's own shrinking would take from all the columns alike).
    fixed = [max([cell_len(header)] + [cell_len(row[i]) for row in rows]) for i, header in enumerate(headers[:-1])]
    command_width = max(MIN_COMMAND_WIDTH, width - sum(fixed) - GAP * len(fixed))
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1, 0, 0))
    for header in headers:
        table.add_column(header, no_wrap=True)
    for row in rows:
        command = Text(row[-1], no_wrap=True, overflow="ellipsis")
        command.truncate(command_width, overflow="ellipsis")
        table.add_row(*row[:-1], command)
    return table


def _cut(text: str, width: int) -> str:
    return text if cell_len(text) <= width else set_cell_size(text, width - 1) + "…"

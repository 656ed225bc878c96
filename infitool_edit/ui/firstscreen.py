"""What makes the first screen explain itself: the title bar and the help screen.

The title bar names the file, the model (its name as the backend gives it,
in plain words), the word count and the current goal. F1 opens the help
screen: the keys, and the two ideas a writer needs (who holds the pen; every
change is a version on the timeline). ``?`` opens it too, but only where it
is not text: in the editor, the notes and the find bar ``?`` is typed.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
infitool-edit — you and a language model write one draft; every change is a version.

THE PEN  Either you or the model holds the pen, never both. Type (or F2) to take it:
the model stops at once. F3 hands it back; ctrl+g gives the model a goal.
The draft is saved automatically; every change is a version in the timeline.
Before the model deletes over a fifth of the draft it waits and asks:
a allow · r refuse (nothing is applied) · p take the pen.

EDITING
  arrows, PgUp/PgDn, Home/End   move (Home/End: the screen row, again: the line)
  ctrl+← → (alt+← →)            a word left / right; with shift: select
  shift+motion, mouse drag      select; double click a word, triple click a line
  ctrl+a                        select all
  ctrl+c ctrl+x ctrl+v          copy, cut, paste (a terminal paste is one version)
  ctrl+backspace ctrl+w         delete the word before; ctrl+delete the word after
  Tab                           nest a list item; elsewhere four spaces
  ctrl+z  ctrl+y                undo / redo YOUR steps (each one a new version)
  ctrl+f  ctrl+r                find (Enter/↓ next, ↑ previous) / replace (ctrl+r: all)
  F5                            follow the model's cursor again
  F6                            take back everything the model did since its goal

THE TIMELINE (ctrl+t)  Every version, newest first: ● model  ✎ you  ★ checkpoint
  ↺ rewind  ⑂ fork (the branch column shows forks). ↑↓ preview a version,
  Enter rewinds to it (a new version: nothing is lost), f forks a new branch,
  a / s filter by author / scale, r replays, Esc back to the draft.

PANES  ctrl+o outline and notes · ctrl+l command stream (below 100 columns it
       opens over the draft; ctrl+l again closes it) · F4 light/dark
       F8 status details · ctrl+p every command · ctrl+s save now · ctrl+q quit

Esc or F1 closes this help."""


class HelpScreen(ModalScreen[None]):
    """F1: keys and ideas, on one screen."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen VerticalScroll { width: 90; max-width: 100%; height: auto; max-height: 100%;
                                background: $panel; border: round $accent; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape,f1,q,question_mark", "dismiss", "Close help"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(HELP, markup=False, id="help-text")


def word_count(text: str) -> int:
    return len(text.split())


def title_line(file_name: str, model: str, words: int, goal: str | None) -> Text:
    """The title bar's one line."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f" {file_name} ", style="bold")
    text.append(f"· {words:,} words · model: {model} · ")
    text.append(f"goal: {goal}" if goal else "no goal yet (ctrl+g)", style="italic")
    text.append(" · F1 help")
    return text


class TitleBar(Static):
    DEFAULT_CSS = """
    TitleBar { height: 1; background: $panel; color: $foreground; }
    """

    def show(self, file_name: str, model: str, words: int, goal: str | None) -> None:
        self.update(title_line(file_name, model, words, goal), layout=False)

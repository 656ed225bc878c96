"""Holding back an edit the model was guessing at.

Asked for something beyond it (a commit message such as "Mark this PEP as
deferred, and explain why"), a small model still writes edits, and the byte
mask makes each one valid: a search string it was guessing at is bent, byte
by byte, onto whatever the draft holds (`replace "Python 3.8. " "Python
3.8.0b3 released (#1138)"`, a run of a table's spaces replaced by a longer
run). The model's own probabilities tell such lines apart: on the built-in
model's edits, every byte of the place a right edit names (a search string,
a heading path) was chosen with probability 0.47 or more on 100 structure
tasks but one, while most wrong edits on real revisions had a byte chosen at
0.1-0.4. So before the runner applies a model's edit it asks the backend
whether it doubts the line (``Backend.doubt``):

- a byte of the edit's place in the draft was chosen with a probability
  below the checkpoint's ``min_address_p`` (its generation_config.json); or
- the line ran to the byte limit, so the budget closed it: its new text is
  cut, not finished, and applying it would apply half an edit.

The same probabilities tell a goal the model knows from one it does not. On
the goals it was taught (proofreading, sections, notes) the built-in model
chooses its first command with probability 0.99 or more almost every time;
on real commit messages ("Strengthen summary", "Many PEPs: Remove the
Version header") it often hesitates, and what it does then is seldom what the
commit did. So the first command after a goal is doubted too when the model
chose its verb with a probability below the checkpoint's ``min_plan_p``:

- a doubt about a place holds back an edit with a place (below);
- a doubt about the goal holds back any command but ``done``: the model has
  not understood what it was asked, so it should not look, proofread or edit
  on a guess of its own.

A held line is not applied; the model reads ``@error held back: …; nothing
was applied``, and its next line is the doubt's ``ending`` (``Turn.ending``),
every byte of it forced. A model that guessed once guesses again: the built-in
one, told its edit was held back, wrote the same line until its command
budget ran out, and left to write its own summary after a forced ``done``
it wrote "need the punctuation and spacing." or a run of spaces. A writer's
command in between lifts that, as the writer has changed what the model
looks at.

`fix` is never held: it names no place, it applies what `check` found. Nor is
a paragraph split (a replace that only turns one space into a break) for an
unsure place: a split's goal rarely says at which sentence, and no word changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from infitool_edit.commands import CommandError, ast, parse

HELD_BACK = "held back"

# Edits that name a place in the draft the model chose byte by byte.
PLACED_EDITS = (ast.Insert, ast.Delete, ast.Replace, ast.Move)

EDIT_ENDING = b'done "Stopped: I was unsure of that edit."'
GOAL_ENDING = b'done "Left for the writer: I was unsure what the goal asks."'


@dataclass(frozen=True)
class Doubt:
    """Why a backend doubts the line it just wrote (``reason``, in the model's ``@error``) and
    what it doubts (``about``): "goal", what the goal asks (every command but ``done`` is held);
    "place", where an edit goes (one that only breaks a line is not held); "line", the line
    itself (cut at the byte limit)."""

    reason: str
    about: str = "line"

    @property
    def ending(self) -> bytes:
        """The line forced after this one if the runner holds it back (without its newline; a
        backend whose lines are held to fewer bytes lets the model write that line)."""
        return GOAL_ENDING if self.about == "goal" else EDIT_ENDING


def unsure_of_address(probability: float) -> Doubt:
    return Doubt(f"the model was unsure where this edit goes (it chose a byte of the place at p={probability:.2f})",
                 "place")


def cut_at_limit(max_bytes: int) -> Doubt:
    return Doubt(f"the line ran to the {max_bytes}-byte limit and was cut")


def unsure_of_goal(verb: str, probability: float) -> Doubt:
    return Doubt(f"the model was unsure what the goal asks (it chose its first command, {verb}, at "
                 f"p={probability:.2f})", "goal")


def held_back(line: str, doubt: Doubt | None) -> str | None:
    """Why the model's ``line`` is not applied, or None. A doubt about the goal holds every
    command but ``done``; any other doubt holds only an edit with a place in the draft."""
    if doubt is None:
        return None
    try:
        command = parse(line)
    except CommandError:
        return None  # execute says what is wrong with it
    if isinstance(command, ast.Done) or not (doubt.about == "goal" or isinstance(command, PLACED_EDITS)):
        return None
    if doubt.about == "place" and only_breaks_a_line(command):
        return None
    return f"{HELD_BACK}: {doubt.reason}; nothing was applied"


def only_breaks_a_line(command: ast.Command) -> bool:
    """A replace that turns one space between two words into a line or paragraph break and
    changes nothing else (a paragraph split in two): its place may be a guess, as a split's
    goal rarely says at which sentence, and no word or run of spaces changes."""
    if not (isinstance(command, ast.Replace) and isinstance(command.target, ast.Search) and command.old is None):
        return False
    old, new = command.target.text, command.new
    at = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), len(old))
    words_meet = 0 < at < len(old) - 1 and old[at] == " " and not old[at - 1].isspace() and not old[at + 1].isspace()
    return words_meet and any(new == old[:at] + brk + old[at + 1:] for brk in ("\n", "\n\n"))

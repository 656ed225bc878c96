"""How a writer might phrase each kind of goal.

A model trained on four fixed sentences learns those sentences, not what they
ask for: asked "Fix typos" instead of "Fix the typos." it took the draft for a
structural task and rewrote a word. So a goal is composed from parts (a verb,
an object, an ending, sometimes no capital), and every family keeps some
phrasings out of training: the held-out split (``heldout=True``: evaluation
and the held-out loss) asks in words the model never saw, so ``eval`` measures
whether it reads a goal's meaning.

Everything is a function of a ``random.Random``: the same seed, the same goals.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import product


@dataclass(frozen=True)
class Phrasings:
    """Templates (``str.format`` with the task's names) for training and for held-out data."""

    train: tuple[str, ...]
    heldout: tuple[str, ...]

    def pick(self, rng: random.Random, heldout: bool) -> str:
        return rng.choice(self.heldout if heldout else self.train)


def _compose(verbs: tuple[str, ...], objects: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{verb} {thing}" for verb, thing in product(verbs, objects))


_TYPOS = Phrasings(
    train=_compose(("Fix", "Correct", "Find and fix", "Clean up"),
                   ("the typos", "typos", "any typos", "the spelling mistakes", "spelling mistakes",
                    "misspelled words", "any misspelled words", "the spelling", "spelling errors"))
    + ("Proofread for typos", "Check the spelling", "Spellcheck the draft", "Check for typos and fix them"),
    heldout=("Repair the misspellings", "Catch the typos", "Go through and fix any typos", "Tidy up the spelling",
             "Correct the misspellings", "Look for spelling slips and fix them"),
)
_MECHANICS = Phrasings(
    train=_compose(("Fix", "Correct", "Clean up"),
                   ("the punctuation and spacing", "the spacing", "the punctuation", "doubled words and stray spaces",
                    "the mechanics", "capitals and full stops", "doubled words, stray spaces, capitals and full stops"))
    + ("Proofread the mechanics: spacing, punctuation, capitals",),
    heldout=("Tidy the punctuation and the spaces", "Repair the spacing and capitals",
             "Sort out doubled words and spacing"),
)
# Goals that name no kind of mistake: a proofreader answers them all with the same look.
_PROOFREAD = Phrasings(
    train=("Proofread this", "Proofread the draft", "Proofread", "Check the draft for mistakes", "Fix any mistakes",
           "Look for mistakes and fix them", "Fix the mistakes in the draft"),
    heldout=("Give it a proofread", "Correct any errors", "Go over the draft for errors"),
)
_STRUCTURE = {
    "add": Phrasings(
        train=('Add a section "{new}" after "{after}"', 'Add a section called "{new}" after "{after}"',
               'Insert a section "{new}" after the section "{after}"', 'After "{after}", add a section "{new}"',
               'Put a new section "{new}" after "{after}"'),
        heldout=('Add "{new}" as a new section after "{after}"', 'Start a section "{new}" below "{after}"'),
    ),
    "rename": Phrasings(
        train=('Rename the section "{old}" to "{new}"', 'Rename "{old}" to "{new}"',
               'Change the heading "{old}" to "{new}"', 'Rename the heading "{old}" to "{new}"',
               'Call the section "{old}" "{new}" instead'),
        heldout=('Retitle "{old}" as "{new}"', 'Change the section title "{old}" to "{new}"'),
    ),
    "move": Phrasings(
        # "after the section" in moves too: with it only in adds' wordings, a model asked the held-out
        # 'Place "X" after the section "Y"' added a section instead of moving X (session 18).
        train=('Move the section "{which}" after "{after}"', 'Move "{which}" after "{after}"',
               'Put the section "{which}" after "{after}"', 'Move "{which}" after the section "{after}"',
               'Put "{which}" after the section "{after}"', 'Relocate "{which}" after "{after}"',
               'Shift the section "{which}" to after "{after}"', 'Reorder so that "{which}" comes after "{after}"'),
        heldout=('Place "{which}" after the section "{after}"', 'Move "{which}" so it follows "{after}"'),
    ),
    "move to end": Phrasings(
        train=('Move the section "{which}" to the end', 'Move "{which}" to the end', 'Put "{which}" last'),
        heldout=('Make "{which}" the last section', 'Move "{which}" to the very end'),
    ),
    "notes": Phrasings(
        train=("Turn the outline into notes", "Copy the outline into the notes", "Note the outline",
               "Put the outline in the notes", "List the sections in the notes"),
        heldout=("Write the outline into the notes", "Copy the headings into the notes"),
    ),
    "split": Phrasings(
        train=('Split the paragraph that begins "{opening}" in two',
               'Break the paragraph starting "{opening}" into two',
               'Split the paragraph "{opening}" into two paragraphs'),
        heldout=('Make the paragraph that begins "{opening}" two paragraphs',
                 'Cut the paragraph starting "{opening}" in two'),
    ),
}
# Requests for new prose. The built-in model proofreads and edits sections; it cannot write, so
# it learns to decline these (``synth.asks_task``) rather than answer with what it can do (asked
# "Write a paragraph about the fog signal.", a model trained without them copied the outline
# into the notes). ``{topic}`` is a section's title as a sentence names it, ``{section}`` as it is.
_ASKS = Phrasings(
    train=("Write a paragraph about {topic}", "Write a few sentences about {topic}", "Write a new paragraph on {topic}",
           "Describe {topic} in more detail", "Write an introduction", "Write a conclusion", "Continue the draft",
           "Draft the next section", 'Expand the section "{section}"', 'Add more detail to "{section}"',
           'Rewrite "{section}" to be more vivid', 'Add an example to "{section}"', "Make the opening more engaging",
           "Make the tone more formal", "Summarize the draft in a closing paragraph", "Write the rest of the draft"),
    heldout=("Compose a paragraph on {topic}", 'Flesh out "{section}"', "Elaborate on {topic}",
             'Give "{section}" a stronger ending', "Write more about {topic}", "Draft an opening paragraph"),
)
# The goal families that name a kind of mistake, by the task kind they ask for.
_NAMED = {"typos": _TYPOS, "mechanics": _MECHANICS}
PROOFREADING_KINDS = ("typos", "mechanics", "clean")


def _finish(rng: random.Random, phrase: str) -> str:
    """End it as writers do: a full stop, nothing, or (now and then) a lower-case start."""
    ending = rng.choice((".", ".", ".", ""))
    if rng.random() < 0.2:
        phrase = phrase[0].lower() + phrase[1:]
    return phrase + ending


def proofreading_goal(kind: str, rng: random.Random, *, heldout: bool = False) -> str:
    """A goal for a typos, mechanics or clean draft. A third name no kind of
    mistake; a clean draft is asked for any kind (it has none of them)."""
    if kind == "clean":
        kind = rng.choice(PROOFREADING_KINDS)
    family = _PROOFREAD if kind == "clean" or rng.random() < 1 / 3 else _NAMED[kind]
    return _finish(rng, family.pick(rng, heldout))


def structure_goal(kind: str, rng: random.Random, *, heldout: bool = False, **names: str) -> str:
    """A goal for a structural edit; ``names`` fill the template (``new``, ``old``, ``after``, ...)."""
    return _finish(rng, _STRUCTURE[kind].pick(rng, heldout).format(**names))


def ask_goal(rng: random.Random, *, heldout: bool = False, section: str) -> str:
    """A request for new prose about ``section`` (a heading's title), which the model declines."""
    # As a writer names it in a sentence: "The Fog Signal" → "the fog signal", "API Design" → "API design".
    topic = " ".join(word if any(c.isupper() for c in word[1:]) else word.lower() for word in section.split())
    return _finish(rng, _ASKS.pick(rng, heldout).format(topic=topic, section=section))

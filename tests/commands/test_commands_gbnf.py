"""The GBNF grammar llama.cpp's server gets means what the regex and the DFA mean.

The GBNF is read back here from its *text* by a small recognizer written for
this test (not by the code that wrote it): a recursive-descent parser of the
GBNF subset llama.cpp documents (rules, alternatives, groups, "literals",
[classes] with ranges, the escapes llama.cpp's parse_char knows, * + ? {m,n})
that inlines rule references (the grammar is not recursive) and compiles the
result to a Python regular expression over code points, which is what
llama.cpp's grammar matcher reads too. On the generated corpus — valid lines
and mutants of them — the three must agree line by line.
"""

from __future__ import annotations

import random
import re

from infitool_edit.commands import serialize
from infitool_edit.commands.fsm import command_dfa
from infitool_edit.commands.generate import random_command
from infitool_edit.commands.grammar import command_gbnf, command_regex

# ---- a GBNF recognizer (independent of regular.py's writer) --------------------------------

_ESCAPES = {"t": "\t", "r": "\r", "n": "\n", "\\": "\\", '"': '"', "[": "[", "]": "]"}
_HEX = {"x": 2, "u": 4, "U": 8}


class GBNF:
    def __init__(self, text: str) -> None:
        self.rules: dict[str, str] = {}
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                name, body = line.split("::=", 1)
                assert re.fullmatch(r"[A-Za-z0-9-]+", name.strip()), name  # llama.cpp's rule-name characters
                self.rules[name.strip()] = body.strip()
        self.pattern = re.compile(self._rule("root", ()))

    def accepts(self, line: str) -> bool:
        return self.pattern.fullmatch(line) is not None

    def _rule(self, name: str, active: tuple[str, ...]) -> str:
        assert name not in active, f"recursive rule {name}"
        self.text, self.pos = self.rules[name], 0  # the caller puts its own text back
        regex = self._alternatives(active + (name,))
        assert self.pos == len(self.text), f"{name}: trailing {self.text[self.pos:]!r}"
        return regex

    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def _alternatives(self, active) -> str:
        options = [self._sequence(active)]
        self._skip()
        while self.pos < len(self.text) and self.text[self.pos] == "|":
            self.pos += 1
            options.append(self._sequence(active))
            self._skip()
        return "(?:" + "|".join(options) + ")"

    def _sequence(self, active) -> str:
        parts = []
        while True:
            self._skip()
            if self.pos >= len(self.text) or self.text[self.pos] in "|)":
                return "".join(parts)
            parts.append(self._postfix(self._atom(active)))

    def _atom(self, active) -> str:
        char = self.text[self.pos]
        if char == "(":
            self.pos += 1
            inner = self._alternatives(active)
            assert self.text[self.pos] == ")"
            self.pos += 1
            return inner
        if char == '"':
            self.pos += 1
            out = []
            while self.text[self.pos] != '"':
                out.append(re.escape(self._char()))
            self.pos += 1
            return "(?:" + "".join(out) + ")"
        if char == "[":
            self.pos += 1
            negate = self.text[self.pos] == "^"
            self.pos += negate
            ranges = []
            while self.text[self.pos] != "]":
                low = self._char()
                high = low
                if self.text[self.pos] == "-" and self.text[self.pos + 1] != "]":
                    self.pos += 1
                    high = self._char()
                ranges.append(re.escape(low) + ("" if high == low else "-" + re.escape(high)))
            self.pos += 1
            return "[" + ("^" if negate else "") + "".join(ranges) + "]"
        name = re.match(r"[A-Za-z0-9-]+", self.text[self.pos :]).group()
        self.pos += len(name)
        text, pos = self.text, self.pos
        inlined = self._rule(name, active)
        self.text, self.pos = text, pos
        return inlined

    def _char(self) -> str:
        char = self.text[self.pos]
        if char != "\\":
            self.pos += 1
            return char
        kind = self.text[self.pos + 1]
        if kind in _HEX:
            digits = self.text[self.pos + 2 : self.pos + 2 + _HEX[kind]]
            self.pos += 2 + _HEX[kind]
            return chr(int(digits, 16))
        assert kind in _ESCAPES, f"llama.cpp refuses the escape \\{kind}"
        self.pos += 2
        return _ESCAPES[kind]

    def _postfix(self, atom: str) -> str:
        if self.pos < len(self.text) and self.text[self.pos] in "*+?":
            self.pos += 1
            return f"(?:{atom}){self.text[self.pos - 1]}"
        bounds = re.match(r"\{(\d+)(,(\d*))?\}", self.text[self.pos :])
        if bounds:
            self.pos += len(bounds.group())
            return f"(?:{atom}){bounds.group()}"
        return atom


# ---- the corpus ------------------------------------------------------------------------------

_NOISE = ['"', "\\", " ", "x", "9", "0", ":", "-", "#", "$", "v", "\t", "\n", "\x00", "\x7f", "é", "🙂", "/", "A"]


def corpus(count: int = 1500, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(count):
        line = serialize(random_command(rng))
        lines.append(line)
        mutant = list(line)
        for _ in range(rng.randint(1, 2)):
            at = rng.randrange(len(mutant) + 1)
            action = rng.random()
            if action < 0.4 and mutant:
                del mutant[min(at, len(mutant) - 1)]
            elif action < 0.8:
                mutant.insert(at, rng.choice(_NOISE))
            elif mutant:
                mutant[min(at, len(mutant) - 1)] = rng.choice(_NOISE)
        lines.append("".join(mutant))
    return lines


def test_regex_dfa_and_gbnf_accept_the_same_lines() -> None:
    gbnf = GBNF(command_gbnf())
    regex = re.compile(command_regex())
    dfa = command_dfa()
    lines = corpus()
    verdicts = [(regex.fullmatch(line) is not None, dfa.accepts(line.encode()), gbnf.accepts(line)) for line in lines]
    disagreements = [(line, v) for line, v in zip(lines, verdicts) if len(set(v)) > 1]
    assert disagreements == []
    accepted = sum(v[0] for v in verdicts)
    assert len(lines) // 2 <= accepted < len(lines) * 0.85  # every valid line, and many mutants refused


def test_the_recognizer_is_not_vacuous() -> None:
    gbnf = GBNF('root ::= "a" [b-d\\x2D]{1,2} ("e" | f)?\nf ::= [^x]\n')
    assert [gbnf.accepts(s) for s in ("ab", "ad-", "a-e", "abcde", "a", "abx", "abcz")] == [
        True, True, True, False, False, False, True]

"""Turning draft paths and checkpoint names into legal git ref components.

A draft path (``docs/my draft.md``) and a checkpoint name (``"draft one"``)
may hold characters git refuses in a ref (space, ``:``, ``..``, a leading
dot, a ``.lock`` ending; see ``git help check-ref-format``). Each becomes a
single ref component by percent-encoding: reversible, readable for ordinary
names (``draft.md`` stays ``draft.md``), and a whole path stays one
component (``/`` becomes ``%2F``) so two drafts' namespaces never nest.
"""

from __future__ import annotations

import string
from urllib.parse import unquote

_PLAIN = frozenset((string.ascii_letters + string.digits + "_-").encode())
_DOT = ord(".")


def encode_component(name: str) -> str:
    """``name`` as one legal ref component; ``decode_component`` undoes it."""
    if not name:
        raise ValueError("an empty name cannot be stored in git")
    raw = name.encode("utf-8")
    out: list[str] = []
    for index, byte in enumerate(raw):
        if byte in _PLAIN:
            out.append(chr(byte))
        elif byte == _DOT and _dot_is_legal(raw, index):
            out.append(".")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def _dot_is_legal(raw: bytes, index: int) -> bool:
    # git refuses a component that starts or ends with a dot, holds "..",
    # or ends with ".lock"; every other dot is kept as it is.
    if index == 0 or index == len(raw) - 1 or raw[index - 1] == _DOT:
        return False
    return raw[index:] != b".lock"


def decode_component(component: str) -> str:
    return unquote(component, encoding="utf-8", errors="strict")

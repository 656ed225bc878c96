"""Heading slugs, until ``infitool_edit.commands`` exports the shared one."""

from __future__ import annotations


def slugify(title: str) -> str:
    """``Method & Results`` → ``method--results``: lower case, whitespace as
    ``-``, punctuation other than ``-`` and ``_`` dropped."""
    dashed = "".join("-" if ch.isspace() else ch for ch in title.strip().lower())
    return "".join(ch for ch in dashed if ch.isalnum() or ch in "-_")

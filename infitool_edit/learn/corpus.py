"""Clean prose whose licences allow shipping weights trained on it.

Sources: the git bundles of real revision histories beside the repository
(``../shared/data``, or ``$INFITOOL_DATA``), checked out once into a cache
outside the repository; Python's own documentation topics (``pydoc_data``,
shipped with CPython); the project's own docs. Each document says where it
came from and under which licence, so the model card can list them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from infitool_edit.errors import InfitoolError
from infitool_edit.learn.split import held_out

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Bundle:
    name: str
    description: str
    licence: str
    globs: tuple[str, ...]


BUNDLES = (
    Bundle("rust-book", "The Rust Programming Language (rust-lang/book)", "MIT OR Apache-2.0", ("src/*.md",)),
    Bundle(
        "peps",
        "Python Enhancement Proposals (python/peps)",
        "public domain or CC0-1.0",
        ("peps/pep-*.rst", "pep-*.txt", "pep-*.rst"),
    ),
    Bundle("rust-rfcs", "Rust RFCs (rust-lang/rfcs)", "MIT OR Apache-2.0", ("text/*.md",)),
)


@dataclass(frozen=True)
class Document:
    source: str  # "rust-book", "peps", "rust-rfcs", "python-docs", "infitool-docs"
    path: str  # the path inside its source
    text: str
    licence: str

    @property
    def held_out(self) -> bool:
        return held_out(self.source, self.path)


class CorpusError(InfitoolError, ValueError):
    """A corpus that cannot be read (one line)."""


def data_dir() -> Path:
    """Where the bundles are: ``$INFITOOL_DATA``, else ``shared/data`` beside the clone."""
    configured = os.environ.get("INFITOOL_DATA")
    return Path(configured) if configured else REPOSITORY_ROOT.parent / "shared" / "data"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "infitool-edit" / "data"


def checkout(bundle_name: str) -> Path:
    """A clone of ``NAME.bundle`` in the cache (made once; the bundle itself is read-only)."""
    bundle = data_dir() / f"{bundle_name}.bundle"
    target = cache_dir() / bundle_name
    if (target / ".git").is_dir():
        return target
    if not bundle.is_file():
        raise CorpusError(f"{bundle}: no such bundle (set INFITOOL_DATA to the folder that holds it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    subprocess.run(["rm", "-rf", str(partial)], check=True)
    result = subprocess.run(
        ["git", "clone", "--quiet", str(bundle), str(partial)], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise CorpusError(f"{bundle}: git clone failed: {result.stderr.strip().splitlines()[-1:]}")
    partial.rename(target)  # a clone cut short never looks finished
    return target


def tracked_files(repo: Path, globs: tuple[str, ...]) -> list[str]:
    listing = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z"], capture_output=True, check=True
    ).stdout.decode("utf-8", "surrogateescape")
    return sorted(p for p in listing.split("\0") if p and any(fnmatch(p, g) for g in globs))


def bundle_documents(bundle: Bundle) -> Iterator[Document]:
    repo = checkout(bundle.name)
    for path in tracked_files(repo, bundle.globs):
        try:
            text = (repo / path).read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        yield Document(bundle.name, path, text, bundle.licence)


def python_doc_documents() -> Iterator[Document]:
    """The language reference topics CPython ships for ``help()`` (PSF-2.0)."""
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield Document("python-docs", f"topics/{name}", topics[name], "PSF-2.0")


def project_doc_documents() -> Iterator[Document]:
    for path in sorted((REPOSITORY_ROOT / "docs").glob("*.md")):
        yield Document("infitool-docs", f"docs/{path.name}", path.read_text(encoding="utf-8"), "MIT")


def documents(split: str = "train", *, sources: tuple[str, ...] | None = None) -> Iterator[Document]:
    """Every document of the chosen split: ``train``, ``heldout`` or ``all``."""
    if split not in ("train", "heldout", "all"):
        raise CorpusError(f"unknown split {split!r} (train, heldout or all)")
    streams: list[Iterator[Document]] = []
    for bundle in BUNDLES:
        if sources is None or bundle.name in sources:
            streams.append(bundle_documents(bundle))
    if sources is None or "python-docs" in sources:
        streams.append(python_doc_documents())
    if sources is None or "infitool-docs" in sources:
        streams.append(project_doc_documents())
    for stream in streams:
        for document in stream:
            if split == "all" or (split == "heldout") == document.held_out:
                yield document

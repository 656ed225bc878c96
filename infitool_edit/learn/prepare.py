"""The training folder: ``infitool-edit prepare --out DIR``.

- ``prose.jsonl``: ``{"text", "source", "path", "licence"}`` per document of
  the train split, unwrapped, code blocks left out (phase 1: plain language
  modelling, loss on every byte).
- ``streams.jsonl``: ``{"stream", "task", "source", "path"}`` per session, the
  exact text the runtime shows the model (phase 2: loss on the model's own
  command bytes only): synthetic tasks and traces of the bundles' train files.
- ``heldout/streams.jsonl``, ``heldout/prose.jsonl``: the same, made only
  from the HELD-OUT files (a few hundred streams): the validation loss that
  ``train`` reports, on text it never trains on.
- ``manifest.json``: sources and licences, counts per task, the split rule,
  the seed, the trace statistics, how long the build took.

The train files are read for the training data and the held-out files only for
``heldout/`` (``infitool_edit.learn.split``), so nothing the evaluation uses can
leak into training. The work is cut into shards (a few hundred
streams each, or the traces of one part of one bundle) rendered in parallel
processes; each shard is written to ``DIR/parts`` when whole, so an
interrupted build resumes where it stopped. Every stream is checked as it is
rendered: it reaches its target, with no refused command, ending with done.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from infitool_edit.learn import corpus
from infitool_edit.learn.real import REAL_KINDS, real_tasks
from infitool_edit.learn.render import Renderer
from infitool_edit.learn.split import HELD_OUT_PERCENT
from infitool_edit.learn.tasks import StreamMismatch, render_task

# Shares of the streams by task. Traces are capped by what the histories hold;
# whatever they cannot fill goes to the synthetic tasks in these proportions.
MIX = {"traces": 0.30, "typos": 0.24, "mechanics": 0.14, "clean": 0.08, "structure": 0.14, "process": 0.10}
# Kinds read from the bundles' revision pairs (a shard per slice of a bundle's files); the
# real-commit lessons (learn/real.py) are asked for by name in --mix, never by default.
HISTORY_KINDS = ("traces", *REAL_KINDS)
# Synthetic kinds outside the default mix, asked for by name in --mix too (learn/synth.py).
NAMED_KINDS = (*REAL_KINDS, "asks")
SHARD_STREAMS = 250
HELDOUT_STREAMS = 300  # validation streams in heldout/, in the same mix
TRACE_PARTS = {"peps": 6, "rust-rfcs": 3, "rust-book": 1}
PROSE_SOURCES = ("rust-book", "peps", "rust-rfcs", "python-docs", "infitool-docs")
SPLIT_RULE = (
    f"a whole file is held out when the first 4 bytes of sha256('<source>/<path>'), big-endian, "
    f"mod 100 < {HELD_OUT_PERCENT} (infitool_edit.learn.split.held_out); only the other files are read here"
)


class PrepareError(ValueError):
    """A training folder that cannot be built (one line)."""


@dataclass(frozen=True)
class Shard:
    name: str  # file name under parts/
    kind: str  # a task kind
    count: int  # streams wanted (traces: at most)
    seed: str  # of the shard's random choices
    bundle: str = ""  # traces: which bundle
    part: int = 0  # traces: which of TRACE_PARTS[bundle] slices of its files
    parts: int = 1
    max_pairs: int | None = None  # traces: read at most this many pairs (tests)
    split: str = "train"  # which files the shard reads: train, or heldout (validation streams)


def plan_shards(streams: int, seed: int, *, bundles: tuple[str, ...] = ("rust-book", "peps", "rust-rfcs"),
                max_pairs: int | None = None, split: str = "train", mix: dict[str, float] = MIX) -> list[Shard]:
    """The shards of ``streams`` streams in ``mix`` (shares by task kind); ``split="heldout"``
    plans the validation streams (named ``heldout-*``, made from the held-out files only)."""
    if split == "heldout":
        return [replace(shard, name=f"heldout-{shard.name}", seed=f"heldout:{shard.seed}", split="heldout")
                for shard in plan_shards(streams, seed, bundles=bundles, max_pairs=max_pairs, mix=mix)]
    shards: list[Shard] = []
    mix = dict(mix) if bundles else {k: v for k, v in mix.items() if k not in HISTORY_KINDS}
    counts = _apportion(streams, mix)
    slices = [(b, p, TRACE_PARTS.get(b, 1)) for b in bundles for p in range(TRACE_PARTS.get(b, 1))]
    for kind in HISTORY_KINDS:
        wanted = counts.pop(kind, 0)
        for bundle, part, parts in slices if wanted else ():
            shards.append(Shard(f"{kind}-{bundle}-{part}.jsonl", kind, -(-wanted // len(slices)),
                                f"{seed}:{kind}:{bundle}:{part}", bundle, part, parts, max_pairs))
    for kind, count in counts.items():
        for j in range(0, count, SHARD_STREAMS):
            shards.append(Shard(f"{kind}-{j // SHARD_STREAMS}.jsonl", kind, min(SHARD_STREAMS, count - j),
                                f"{seed}:{kind}:{j // SHARD_STREAMS}"))
    return shards


def parse_mix(text: str) -> dict[str, float]:
    """``"typos=4800,structure=8000"`` → shares by task kind (any scale: they are normalised)."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, share = part.partition("=")
        try:
            mix[kind.strip()] = float(share)  # no "=": float("") refuses too
        except ValueError:
            raise PrepareError(f"--mix {part!r}: a share is a number (e.g. typos=4800)") from None
    return check_mix(mix)


def check_mix(mix: dict[str, float]) -> dict[str, float]:
    unknown = sorted(set(mix) - set(MIX) - set(NAMED_KINDS))
    if unknown:
        raise PrepareError(f"--mix: unknown task kind {unknown[0]!r} (one of {', '.join((*MIX, *NAMED_KINDS))})")
    if not mix or any(not share > 0 for share in mix.values()):
        raise PrepareError("--mix: give each kind a share above 0, e.g. typos=4800,structure=8000")
    return dict(mix)


def _apportion(total: int, shares: dict[str, float]) -> dict[str, int]:
    """Whole counts in proportion to ``shares`` that add up to ``total``."""
    weight = sum(shares.values())
    raw = {k: total * v / weight for k, v in shares.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[: total - sum(counts.values())]:
        counts[k] += 1
    return counts


# --- one shard, in a worker process --------------------------------------------------------

_POOLS: dict = {}  # the worker's cut-up documents of each split, made once per process


def _source_pool(split: str):
    if split not in _POOLS:
        from infitool_edit.learn.synth import sources

        _POOLS[split] = sources(corpus.documents(split))
    return _POOLS[split]


def _shard_tasks(shard: Shard, stats: Counter):
    rng = random.Random(shard.seed)
    if shard.kind in HISTORY_KINDS:
        candidates = _slice_pairs(shard, stats)
        if shard.kind in REAL_KINDS:
            return real_tasks(shard.kind, candidates, shard.count, rng, stats)  # it shuffles them
        from infitool_edit.learn.traces import trace_task

        # Sample before planning: a slice holds thousands of pairs and a
        # shard needs hundreds, and planning is the expensive part.
        rng.shuffle(candidates)
        tasks = []
        for pair in candidates:
            if len(tasks) >= shard.count:
                break
            stats["pairs"] += 1
            result = trace_task(pair)
            if isinstance(result, str):
                stats[f"skipped: {result}"] += 1
            else:
                tasks.append(result)
        return tasks
    from infitool_edit.learn.synth import synthetic_tasks

    return list(synthetic_tasks(rng, _source_pool(shard.split), {shard.kind: shard.count},
                                heldout=shard.split == "heldout"))


def _slice_pairs(shard: Shard, stats: Counter) -> list:
    """The revision pairs of the shard's slice of its bundle's files (of its split)."""
    from infitool_edit.learn.traces import pairs

    bundle = next(b for b in corpus.BUNDLES if b.name == shard.bundle)
    repo = corpus.checkout(bundle.name)
    candidates = []
    for n, pair in enumerate(pairs(repo, bundle.globs, source=bundle.name, split=shard.split)):
        if shard.max_pairs is not None and n >= shard.max_pairs:
            break
        if int(hashlib.sha256(pair.path.encode()).hexdigest()[:8], 16) % shard.parts == shard.part:
            candidates.append(pair)
    stats["pairs in the slice"] += len(candidates)
    return candidates


def build_shard(args: tuple[Shard, str]) -> dict:
    """Render one shard into ``parts/NAME`` (written whole, then renamed)."""
    shard, folder = args
    target = Path(folder) / "parts" / shard.name
    summary_path = target.with_suffix(".json")
    if target.is_file() and summary_path.is_file():
        return json.loads(summary_path.read_text())
    started = time.perf_counter()
    stats: Counter = Counter()
    tasks = _shard_tasks(shard, stats)
    partial = target.with_suffix(".partial")
    with Renderer() as renderer, open(partial, "w", encoding="utf-8") as out:
        for task in tasks:
            try:
                record = render_task(renderer, task)
            except StreamMismatch:
                stats["replay failures"] += 1
                continue
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            stats["streams"] += 1
            stats["stream bytes"] += len(record["stream"].encode("utf-8"))
    os.replace(partial, target)
    summary = {"shard": shard.name, "kind": shard.kind, "seconds": round(time.perf_counter() - started, 1),
               **dict(stats)}
    summary_path.write_text(json.dumps(summary))
    return summary


# --- prose -------------------------------------------------------------------------------

_FENCED = re.compile(r"^(```|~~~).*?^\1[^\n]*\n?", re.M | re.S)


def prose_text(text: str) -> str:
    """A document as phase-1 prose: unwrapped, fenced code left out."""
    from infitool_edit.learn.traces import unwrap

    return re.sub(r"\n{3,}", "\n\n", _FENCED.sub("", unwrap(text))).strip() + "\n"


def write_prose(path: Path, *, split: str = "train") -> dict:
    counts: Counter = Counter()
    partial = path.with_suffix(".partial")
    with open(partial, "w", encoding="utf-8") as out:
        for document in corpus.documents(split, sources=PROSE_SOURCES):
            text = prose_text(document.text)
            if len(text) < 200:
                continue
            out.write(json.dumps({"text": text, "source": document.source, "path": document.path,
                                  "licence": document.licence}, ensure_ascii=False) + "\n")
            counts[document.source] += 1
            counts["bytes"] += len(text.encode("utf-8"))
    os.replace(partial, path)
    return dict(counts)


HELDOUT_DRILL_MB = 0.1  # heldout/copy_drill.jsonl: what `train` measures heldout_copy_bpb on


def append_copy_drill(path: Path, megabytes: float, seed: int) -> dict:
    """Copy drills (learn/drill.py) after the prose in ``path``, from the TRAIN split's headings,
    seeded by the folder's seed + 20 (so the folder of seed 11 holds session 11's drill)."""
    return write_copy_drill(path, megabytes, seed, split="train", mode="a")


def write_copy_drill(path: Path, megabytes: float, seed: int, *, split: str, mode: str = "w") -> dict:
    """``megabytes`` of copy drills from ``split``'s headings into ``path`` (seeded by seed + 20)."""
    from infitool_edit.learn.drill import copy_drill

    titles = [title for source in _source_pool(split) for title, _ in source.sections]
    documents = size = 0
    with open(path, mode, encoding="utf-8") as out:
        for record in copy_drill(random.Random(seed + 20), titles, megabytes):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            documents += 1
            size += len(record["text"].encode("utf-8"))
    return {"copy-drill": documents, "copy_drill_bytes": size}


# --- the whole folder ---------------------------------------------------------------------


def prepare(out: Path, *, streams: int = 20_000, seed: int = 0, jobs: int | None = None,
            bundles: tuple[str, ...] = ("rust-book", "peps", "rust-rfcs"), max_pairs: int | None = None,
            progress: Callable[[dict], None] | None = None, merge_only: bool = False,
            mix: dict[str, float] | None = None, copy_drill_mb: float = 0.0) -> dict:
    """Build (or finish building) the training folder ``out``; returns the
    manifest. ``merge_only``: build nothing more, make the folder from the
    shards already whole (an interrupted build, used as it stands). ``mix``:
    shares by task kind instead of MIX (``parse_mix``); the bundles are read only for the kinds in
    HISTORY_KINDS.
    ``copy_drill_mb``: that many MB of copy drills (learn/drill.py) join prose.jsonl."""
    started = time.perf_counter()
    mix = MIX if mix is None else check_mix(mix)
    if not any(mix.get(kind) for kind in HISTORY_KINDS):
        bundles = ()
    out = Path(out)
    (out / "parts").mkdir(parents=True, exist_ok=True)
    shards = plan_shards(streams, seed, bundles=bundles, max_pairs=max_pairs, mix=mix)
    heldout = plan_shards(min(HELDOUT_STREAMS, streams), seed, bundles=bundles, max_pairs=max_pairs, split="heldout",
                          mix=mix)
    if merge_only:
        shards = [s for s in shards if _whole(out, s)]
        if not shards:
            raise PrepareError(f"{out}: no finished shards to merge")
        summaries = [json.loads((out / "parts" / s.name).with_suffix(".json").read_text()) for s in shards]
        return _finish(out, shards, summaries, streams, seed, started, [s for s in heldout if _whole(out, s)], mix,
                       copy_drill_mb)
    for bundle in bundles:
        corpus.checkout(bundle)  # once, before the workers race for it
    jobs = jobs or os.cpu_count() or 1
    summaries = _build(shards, out, jobs, progress)
    # Histories that hold fewer traces than their share: synthetic tasks, in
    # their proportions, make up the difference.
    made = sum(s.get("streams", 0) for s in summaries)
    if made < streams:
        fill = [Shard(f"fill-{s.name}", s.kind, s.count, f"fill:{s.seed}")
                for s in plan_shards(streams - made, seed, bundles=(), mix=mix)]
        shards += fill
        summaries += _build(fill, out, jobs, progress)
    _build(heldout, out, jobs, progress)
    return _finish(out, shards, summaries, streams, seed, started, heldout, mix, copy_drill_mb)


def _whole(out: Path, shard: Shard) -> bool:
    """A shard written whole by ``build_shard`` (its summary is written last)."""
    target = out / "parts" / shard.name
    return target.is_file() and target.with_suffix(".json").is_file()


def _finish(out: Path, shards: list[Shard], summaries: list[dict], streams: int, seed: int, started: float,
            heldout: list[Shard] = (), mix: dict[str, float] = MIX, copy_drill_mb: float = 0.0) -> dict:
    prose = write_prose(out / "prose.jsonl")
    if copy_drill_mb > 0:
        prose |= append_copy_drill(out / "prose.jsonl", copy_drill_mb, seed)
    counts = _merge(out, shards, streams, seed)
    heldout_counts = {}
    if heldout:
        (out / "heldout").mkdir(exist_ok=True)
        write_prose(out / "heldout" / "prose.jsonl", split="heldout")
        if copy_drill_mb > 0:
            write_copy_drill(out / "heldout" / "copy_drill.jsonl", HELDOUT_DRILL_MB, seed + 1, split="heldout")
        heldout_counts = _merge(out, heldout, HELDOUT_STREAMS, seed, into=out / "heldout" / "streams.jsonl")
    stats: Counter = Counter()
    for summary in summaries:
        for key, value in summary.items():
            if isinstance(value, (int, float)) and key not in ("seconds",):
                stats[key] += value
    manifest = {
        "format": "infitool-edit training folder 1",
        "seed": seed,
        "streams_requested": streams,
        "shards": len(shards),
        "counts": counts,
        "heldout_counts": heldout_counts,
        "prose": prose,
        "traces": {k: v for k, v in sorted(stats.items()) if k in ("pairs", "pairs in the slice") or k.startswith("skipped")},
        "replay_failures": stats.get("replay failures", 0),
        "stream_bytes": stats.get("stream bytes", 0),
        "split": SPLIT_RULE,
        "sources": _sources(),
        "mix": mix,
        "seconds": round(time.perf_counter() - started, 1),
        "render_seconds": round(sum(s["seconds"] for s in summaries), 1),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _build(shards: list[Shard], out: Path, jobs: int, progress) -> list[dict]:
    work = [(shard, str(out)) for shard in shards]
    summaries = []
    if jobs == 1:
        for item in work:
            summaries.append(build_shard(item))
            progress and progress(summaries[-1])
        return summaries
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        for summary in pool.imap_unordered(build_shard, work):
            summaries.append(summary)
            progress and progress(summary)
    return summaries


def _merge(out: Path, shards: list[Shard], streams: int, seed: int, *, into: Path | None = None) -> dict:
    """All shards into ``streams.jsonl`` (or ``into``), in a seeded shuffle."""
    lines: list[str] = []
    for shard in shards:
        path = out / "parts" / shard.name
        # "\n" only: rows are written with ensure_ascii=False, and a source's U+2028 or U+0085
        # (which str.splitlines also breaks at) may stand raw inside one
        lines.extend(line for line in path.read_text(encoding="utf-8").split("\n") if line)
    random.Random(f"{seed}:merge").shuffle(lines)
    lines = lines[:streams]
    counts = Counter(json.loads(line)["task"] for line in lines)
    into = into or out / "streams.jsonl"
    partial = into.with_suffix(".partial")
    partial.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(partial, into)
    return {"total": len(lines), **dict(sorted(counts.items()))}


def _sources() -> list[dict]:
    listed = [{"source": b.name, "description": b.description, "licence": b.licence, "files": list(b.globs)}
              for b in corpus.BUNDLES]
    listed.append({"source": "python-docs", "description": "CPython's pydoc_data topics", "licence": "PSF-2.0"})
    listed.append({"source": "infitool-docs", "description": "this project's docs/", "licence": "MIT"})
    listed.append({"source": "copy-drill", "description": "learn/drill.py: goals and commands built around the "
                   "training sources' headings (prepare --copy-drill)", "licence": "MIT (this project's; the headings "
                   "are the sources' above)"})
    listed.append({"source": "codespell", "description": "codespell's dictionary (misspellings, reversed)",
                   "licence": "CC-BY-SA-3.0 (the dictionary, from English Wikipedia; only its misspellings enter the drafts)"})
    return listed

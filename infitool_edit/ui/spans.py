"""Where two long texts differ, found at C speed: the few changed lines of
two versions of a book, without a Python step per line.

Equal stretches are skipped by comparing 32 KB slices, and a differing slice
is narrowed by a binary search; each difference is widened to whole lines,
and the search resumes after them. Lines added or removed shift everything
after them, so the common suffix is cut first; past ``MAX_SPANS``
differences the texts are too far apart and None says so (the caller then
falls back to a whole-text method).
"""

from __future__ import annotations

CHUNK = 1 << 15
MAX_SPANS = 64


def _equal_run(a: str, i: int, b: str, j: int, n: int) -> int:
    """How many characters from a[i] and b[j] on (at most ``n``) are equal."""
    done = 0
    while done < n:
        step = min(CHUNK, n - done)
        if a[i + done : i + done + step] == b[j + done : j + done + step]:
            done += step
            continue
        low, high = 0, step - 1
        while low < high:
            mid = (low + high + 1) // 2
            if a[i + done : i + done + mid] == b[j + done : j + done + mid]:
                low = mid
            else:
                high = mid - 1
        return done + low
    return n


def _equal_tail(a: str, b: str, n: int) -> int:
    """How many characters (at most ``n``) ``a`` and ``b`` share at their ends."""
    done = 0
    while done < n:
        step = min(CHUNK, n - done)
        if a[len(a) - done - step : len(a) - done] == b[len(b) - done - step : len(b) - done]:
            done += step
            continue
        low, high = 0, step - 1
        while low < high:
            mid = (low + high + 1) // 2
            if a[len(a) - done - mid : len(a) - done] == b[len(b) - done - mid : len(b) - done]:
                low = mid
            else:
                high = mid - 1
        return done + low
    return n


def changed_spans(a: str, b: str, max_spans: int = MAX_SPANS) -> list[tuple[int, int, int, int]] | None:
    """The differing stretches of ``a`` and ``b`` as ``(a0, a1, b0, b1)``:
    ``a[a0:a1]`` became ``b[b0:b1]``, in order. Each is whole lines: it starts
    at a line's start and ends just after a newline or at the text's end.
    Between them the texts are equal. None: more than ``max_spans``."""
    tail = _equal_tail(a, b, min(len(a), len(b)))
    end_a, end_b = len(a) - tail, len(b) - tail
    if end_a or end_b:
        # The shared tail is cut to whole lines: a partly shared line is changed.
        newline = a.find("\n", end_a)
        shift = len(a) - end_a if newline == -1 else newline + 1 - end_a
        end_a, end_b = end_a + shift, end_b + shift
    spans: list[tuple[int, int, int, int]] = []
    i = j = 0  # line starts, the texts equal before them
    while True:
        same = _equal_run(a, i, b, j, min(end_a - i, end_b - j))
        if i + same == end_a and j + same == end_b:
            return spans
        if len(spans) == max_spans:
            return None
        start_a = max(a.rfind("\n", i, i + same) + 1, i)
        start_b = j + (start_a - i)
        stop_a, stop_b = a.find("\n", i + same, end_a), b.find("\n", j + same, end_b)
        if stop_a == -1 or stop_b == -1:  # the rest of either one: a span to the end
            stop_a, stop_b = end_a, end_b
        else:
            stop_a, stop_b = stop_a + 1, stop_b + 1
        spans.append((start_a, stop_a, start_b, stop_b))
        i, j = stop_a, stop_b

"""Progress bars of the API's long calls: on stderr, only when it is a terminal, and only once a call has taken
``PROGRESS_DELAY`` seconds, so that a quick call draws nothing (tqdm)."""

from __future__ import annotations

from collections.abc import Iterator

from tqdm.auto import tqdm

PROGRESS_DELAY = 1.0  # seconds before a bar is drawn


def progress_slices(total: int, step: int, what: str, unit: str) -> Iterator[slice]:
    """The slices ``[start, start + step)`` of ``range(total)`` in order, with a bar of the ``unit``s done (``what``
    the pass does): sampling a million rows, or scoring a hundred neighborhoods, takes seconds."""
    with tqdm(total=total, desc=what, unit=unit, disable=None, leave=False, delay=PROGRESS_DELAY) as bar:
        for start in range(0, total, step):
            yield slice(start, start + step)
            bar.update(min(step, total - start))

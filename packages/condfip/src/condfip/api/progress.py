"""Progress bars of the API's long calls: on stderr, only when it is a terminal (unless asked for), and only once
a call has taken ``PROGRESS_DELAY`` seconds, so that a quick call draws nothing (tqdm)."""

from __future__ import annotations

from collections.abc import Iterator

from tqdm.auto import tqdm

PROGRESS_DELAY = 1.0  # seconds before a bar is drawn


def progress_bar(total: int, what: str, unit: str, enabled: bool | None = None, **options: object) -> tqdm:
    """A bar of ``total`` ``unit``s (``what`` the call does) with this module's settings: drawn after
    ``PROGRESS_DELAY`` seconds, gone when closed; ``enabled`` None: when stderr is a terminal. ``options`` go to
    tqdm."""
    return tqdm(
        total=total,
        desc=what,
        unit=unit,
        disable=None if enabled is None else not enabled,
        leave=False,
        delay=PROGRESS_DELAY,
        **options,
    )


def progress_slices(total: int, step: int, what: str, unit: str) -> Iterator[slice]:
    """The slices ``[start, start + step)`` of ``range(total)`` in order, with a bar of the ``unit``s done (``what``
    the pass does): sampling a million rows, or scoring a hundred neighborhoods, takes seconds. A pass of one
    slice has nothing to show along the way and gets no bar (the effects' and bootstrap's many small passes)."""
    if total <= step:
        if total > 0:
            yield slice(0, step)
        return
    with progress_bar(total, what, unit) as bar:
        for start in range(0, total, step):
            yield slice(start, start + step)
            bar.update(min(step, total - start))

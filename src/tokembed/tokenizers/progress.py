"""Progress for training steps that run inside an engine (sentencepiece's C++ trainer, Morfessor).

Unlike a bar over an iterable (tqdm around the corpus lines), these steps report nothing while
they run; :func:`elapsed` shows a ticking ``desc: 12s`` line on stderr from a background thread,
only once the step has run :data:`DELAY_S` seconds, and never when stderr is not a terminal (so
logs and pipes stay clean). ``enabled=False`` turns it off, ``True`` forces it on.

>>> with elapsed("nothing to see", enabled=False):
...     pass
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["elapsed", "DELAY_S", "show_progress"]

#: Steps shorter than this show no progress (the issue's "longer than ~2 s").
DELAY_S = 2.0
#: Seconds between refreshes of the line.
TICK_S = 0.5


def show_progress(enabled: bool | None) -> bool:
    """``enabled`` if given, else whether stderr is a terminal."""
    return sys.stderr.isatty() if enabled is None else bool(enabled)


@contextmanager
def elapsed(desc: str, *, enabled: bool | None = None) -> Iterator[None]:
    """Show ``desc`` with the elapsed seconds while the body runs (after :data:`DELAY_S`)."""
    if not show_progress(enabled):
        yield
        return
    from tqdm import tqdm

    bar = tqdm(desc=desc, bar_format="{desc}: {elapsed}", delay=DELAY_S, file=sys.stderr, leave=False)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(TICK_S):
            bar.update(0)  # redraws once DELAY_S has passed (tqdm's own delay rule)

    t = threading.Thread(target=tick, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        bar.close()

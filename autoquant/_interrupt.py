"""Ctrl-C during autoquant's long work: remembered as well as raised.

Libraries may catch the KeyboardInterrupt a Ctrl-C raises and wrap it in their own error
(torch.compile turns it into a compile error), which a trial or the final round would then
record as a failed configuration and go on. Within ``watching()``, a Ctrl-C is remembered, and
``raise_if_interrupted`` turns such an error back into the interrupt it was.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_REQUESTED = threading.Event()


def _on_interrupt(signum, frame) -> None:
    _REQUESTED.set()
    raise KeyboardInterrupt


@contextmanager
def watching() -> Iterator[None]:
    """Within: a Ctrl-C is remembered, then raised as usual (main thread only: signal
    handlers can be set only there; elsewhere nothing changes)."""
    _REQUESTED.clear()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _on_interrupt) if main else None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def interrupted() -> bool:
    """Whether a Ctrl-C came while watching."""
    return _REQUESTED.is_set()


def raise_if_interrupted(err: BaseException) -> None:
    """Raise KeyboardInterrupt (from ``err``) when a Ctrl-C came while watching."""
    if interrupted():
        raise KeyboardInterrupt from err

"""Time limits: a trial, or a finalist being rebuilt and scored, stopped after N seconds."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class TrialTimeout(Exception):
    """A trial ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise TrialTimeout in this thread after ``seconds`` (main thread only: SIGALRM).

    Python code is interrupted at once; a native kernel stuck in a loop is interrupted when it
    returns to Python, which only process isolation (``isolate=True``) can shorten.
    """
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise TrialTimeout(f"the trial ran past its time limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

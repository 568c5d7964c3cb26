"""Run ``autoquant`` with a Ctrl-C delivered inside one stage of a search, deterministically.

``python -m tests.interrupt_stage STAGE ARGS...``: the process sends itself SIGINT when the
search enters STAGE (``sensitivity``: the per-layer pass; ``trial``: the third trial's
evaluation; ``final``: the final round), so the interrupt always lands there, whatever the
machine's speed. After the command returns, the threads still alive that would keep the
process from exiting (not daemons) are printed as ``LEFT: name``, and the process exits
with the command's code.
"""

import os
import signal
import sys
import threading
import time


def _interrupt_here() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(60)  # the interrupt arrives during this wait, inside the stage


def _interrupting(owner, name: str, on_call: int = 1) -> None:
    """Replace ``owner.name`` by a wrapper that interrupts on its ``on_call``-th call."""
    original = getattr(owner, name)
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == on_call:
            _interrupt_here()
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def _patch(stage: str) -> None:
    import autoquant.recommend.recommendation as recommendation
    import autoquant.study.run as run

    if stage == "sensitivity":
        _interrupting(run, "cached_sensitivity")
    elif stage == "trial":
        _interrupting(run.Objective, "_evaluate", on_call=3)
    elif stage == "final":
        _interrupting(recommendation, "final_round")
    else:
        raise SystemExit(f"unknown stage {stage!r}")


if __name__ == "__main__":
    _patch(sys.argv[1])
    from autoquant.cli import main

    code = main(sys.argv[2:])
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            print(f"LEFT: {thread.name}", file=sys.stderr)
    sys.exit(code)

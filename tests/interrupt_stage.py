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


def _patch(stage: str) -> None:
    import autoquant.study.run as run

    if stage == "sensitivity":
        original = run.cached_sensitivity

        def sensitivity(*args, **kwargs):
            _interrupt_here()
            return original(*args, **kwargs)

        run.cached_sensitivity = sensitivity
    elif stage == "trial":
        original = run.Objective._evaluate
        calls = []

        def evaluate(self, trial, config):
            calls.append(trial.number)
            if len(calls) == 3:
                _interrupt_here()
            return original(self, trial, config)

        run.Objective._evaluate = evaluate
    elif stage == "final":
        import autoquant.recommend.recommendation as recommendation

        original = recommendation.final_round

        def final_round(*args, **kwargs):
            _interrupt_here()
            return original(*args, **kwargs)

        recommendation.final_round = final_round
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

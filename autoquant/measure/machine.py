"""The machine a timing ran on, and whether other work competed for its cores meanwhile.

A speedup means little without its conditions: resnet18's static int8 model measured 5.4x on
one machine and 9.6x on another (AVX2 against AVX-512 kernels), and on a busy machine float's
latency jumped from 1.9 ms to 160 ms between trials, which made a model at 0.45x float look
fastest. So every timing records how long this process's threads waited for a core while it
ran (Linux's per-thread scheduler statistics): on an idle machine about 1 % of their time, with
another process on the same cores 50 % or more.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
from collections.abc import Iterator
from pathlib import Path

import torch

#: A timing whose threads waited longer than this share of their time for a core ran while
#: other work competed for the cores (idle: about 0.01; one busy process beside it: 0.5).
BUSY_WAIT_SHARE = 0.10


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """The cores this process may run on (its affinity, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _thread_times() -> dict[str, tuple[int, int]] | None:
    """Per thread of this process: nanoseconds on a CPU and waiting on a run queue."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return None
    times = {}
    for tid in tasks:
        try:
            running, waiting, _ = Path(f"/proc/self/task/{tid}/schedstat").read_text().split()
        except (OSError, ValueError):
            continue  # a thread that ended, or a kernel without scheduler statistics
        times[tid] = (int(running), int(waiting))
    return times or None


@dataclasses.dataclass
class WaitWatch:
    """How long this process's threads waited for a core while the watch ran (``watching``).

    Attributes:
        waited_share: Waiting time over running plus waiting, summed over the threads alive at
            both ends; None where the OS does not report it.
    """

    waited_share: float | None = None


@contextlib.contextmanager
def watching() -> Iterator[WaitWatch]:
    """Measure the share of time this process's threads waited for a core inside the block."""
    watch = WaitWatch()
    before = _thread_times()
    yield watch
    after = _thread_times()
    if before is None or after is None:
        return
    running = waiting = 0
    for tid, (run, wait) in after.items():
        if tid in before:
            running += run - before[tid][0]
            waiting += wait - before[tid][1]
    if running + waiting > 0:
        watch.waited_share = waiting / (running + waiting)


def load_average() -> float | None:
    """The one-minute load average, None where the OS has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def is_busy(waited_share: float | None) -> bool:
    """Whether a timing whose threads waited ``waited_share`` of their time ran on a busy
    machine (unknown counts as not busy: nothing to say)."""
    return waited_share is not None and waited_share > BUSY_WAIT_SHARE


def conditions_text(threads: int, waited_share: float | None, load: float | None) -> str:
    """The conditions of a timing in words: CPU, kernels, cores, threads, load, waiting."""
    kernels = torch.backends.cpu.get_cpu_capability()
    text = (
        f"{cpu_name()} ({kernels} kernels), {usable_cores()} cores, {threads} "
        f"thread{'s' if threads != 1 else ''}"
    )
    if load is not None:
        text += f", load average {load:.1f}"
    if waited_share is not None:
        text += f", threads waited {waited_share:.0%} of the time for a core"
    return text


def busy_warning(threads: int, waited_share: float | None, load: float | None) -> str:
    """What to tell a user whose timing ran while other work competed for the cores, or ""."""
    if not is_busy(waited_share):
        return ""
    load_text = f"load average {load:.1f} on " if load is not None else ""
    return (
        f"Other work competed for the cores while the models were timed: this process's threads "
        f"waited {waited_share:.0%} of the time for a core ({load_text}{usable_cores()} cores; "
        f"idle, they wait about 1 %). Speedups measured so are unreliable: a model can look "
        f"faster or slower than it is. Time again on a quiet machine, or leave the scenario's "
        f"{threads} thread{'s' if threads != 1 else ''} their cores."
    )


__all__ = [
    "BUSY_WAIT_SHARE",
    "WaitWatch",
    "busy_warning",
    "conditions_text",
    "cpu_name",
    "is_busy",
    "load_average",
    "usable_cores",
    "watching",
]

"""Scenarios: how a model will be served (examples per call, CPU threads, the float baseline)."""

from __future__ import annotations

import dataclasses
import re

from autoquant._validation import check_int
from autoquant.errors import ConfigError

#: What a scenario's speedups are measured against: the float model run eagerly (what most
#: deployments do) or compiled with Inductor (for a user who already compiles float).
BASELINES = ("eager", "compiled")


@dataclasses.dataclass(frozen=True)
class Scenario:
    """How the model will be served: examples per call, CPU threads, and the float model the
    speedups are measured against (``baseline``: ``eager`` or ``compiled``)."""

    batch_size: int = 1
    threads: int = 1
    baseline: str = "eager"

    def __post_init__(self) -> None:
        check_int("Scenario", "batch_size", self.batch_size, low=1)
        check_int("Scenario", "threads", self.threads, low=1)
        if self.baseline not in BASELINES:
            raise ConfigError(
                f"The 'baseline' parameter of Scenario must be one of {list(BASELINES)}. "
                f"Got {self.baseline!r} instead."
            )

    @property
    def name(self) -> str:
        suffix = "-compiled" if self.baseline == "compiled" else ""
        return f"bs{self.batch_size}-t{self.threads}{suffix}"

    @property
    def reference(self) -> str:
        """The name of the float model speedups are measured against."""
        return "compiled float" if self.baseline == "compiled" else "float"


#: Built-in deployment scenarios: one request at a time on one thread, and throughput; each
#: against eager float (default) or against float compiled with Inductor.
SCENARIOS = {
    s.name: s
    for s in [
        Scenario(1, 1),
        Scenario(64, 2),
        Scenario(1, 1, "compiled"),
        Scenario(64, 2, "compiled"),
    ]
}


def get_scenario(name: str | Scenario) -> Scenario:
    """A Scenario, or one named ``bs{N}-t{M}`` (N examples a call on M threads), with
    ``-compiled`` after it to measure speedups against float compiled with Inductor."""
    if isinstance(name, Scenario):
        return name
    match = re.fullmatch(r"bs([0-9]+)-t([0-9]+)(-compiled)?", str(name).strip())
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise ConfigError(
            f"The 'scenario' parameter must be 'bs{{N}}-t{{M}}' (N examples a call on M threads, "
            f"both >= 1, e.g. {list(SCENARIOS)[:2]}), optionally ending in '-compiled', or a "
            f"Scenario. Got {name!r} instead."
        )
    batch, threads, compiled = match.groups()
    return Scenario(int(batch), int(threads), "compiled" if compiled else "eager")

"""The one place where the noise of torch.ao.quantization is silenced, around autoquant's calls.

torch.ao.quantization warns on every call that it is deprecated, and its observers warn about
``reduce_range`` for every layer. autoquant knows both (a torchao engine can sit beside the
torch.ao methods in the registry), so the messages would only flood a user's terminal. Only
these exact messages are filtered, and only while autoquant's own functions run (``quiet``);
every other warning still reaches the user, and importing autoquant changes no filter.
"""

import contextlib
import functools
import logging
import re
import threading
import warnings
from collections.abc import Callable, Iterator

SILENCED = (
    r"torch\.ao\.quantization is deprecated",
    r"Please use quant_min and quant_max to specify the range for observers",
    r"torch\.quantize_per_tensor, torch\.quantize_per_channel",
    r"must run observer before calling calculate_qparams",
    r"_aminmax is deprecated",
    r"TypedStorage is deprecated",
    # TorchScript is deprecated too, but it is the format that round-trips torch.ao models.
    r"`torch\.jit\.\w+` is deprecated",
    r"The TorchScript type system doesn't support instance-level annotations",
    r"'torch\.load' received a zip file that looks like a TorchScript archive",
    # torchao 0.18 keeps XNNPACKQuantizer (pt2e_static_int8 on qnnpack) under torchao.testing
    # and marks it deprecated for ExecuTorch's copy; its tensor subclasses and Inductor's int8
    # lowering warn on every compile about caching details autoquant cannot change.
    r"XNNPACKQuantizer is deprecated",
    r"\w+ does not implement _stable_hash_for_caching",
    r"To copy construct from a tensor, it is recommended to use sourceTensor",
    # X86InductorQuantizer leaves a pooling layer float when its input is float: what a layer
    # kept in float in front of it (ResNet's stem) asks for; the warning prints a whole config.
    r"The input of maxpool2d is not quantized",
    # torch.export of any nn.LSTM/GRU (the PT2E method) flags the module's own packed weights,
    # which a user's model cannot register differently.
    r"The tensor attributes [\w.\[\], ]*_flat_weights\[0\].* were assigned during export",
    # Optuna marks TPE's grouped multivariate mode experimental; autoquant relies on it for its
    # conditional dimensions and pins the Optuna major version.
    r"Argument ``group`` is an experimental feature",
    r"Argument ``multivariate`` is an experimental feature",
    # Heartbeats and stale-trial handling are how a study survives a killed process.
    r"Argument ``heartbeat_interval`` is an experimental feature",
    r"Argument ``grace_period`` is an experimental feature",
    r"optuna\.storages\._heartbeat\.fail_stale_trials is experimental",
)


#: torch logs these through ``logging`` (``W... _pytree.py:630]``) on every first compile: a
#: torchao enum registered the old way, and a CUDA build of torch looking for CUDA on a CPU host.
SILENCED_LOGS = {
    "torch.utils._pytree": r"is an Enum subclass and is now natively supported by torch\.compile",
    "torch.utils.cpp_extension": r"No CUDA runtime is found",
}


class _DropMessage(logging.Filter):
    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


LOG_FILTERS = {logger: _DropMessage(message) for logger, message in SILENCED_LOGS.items()}

_lock = threading.Lock()
_depth = 0
_added: list[tuple] = []


def _enter() -> None:
    global _depth
    with _lock:
        if _depth == 0:
            before = list(warnings.filters)
            for message in SILENCED:
                warnings.filterwarnings("ignore", message=message)
            # only the entries this scope added are removed on leaving (not a user's own)
            _added[:] = [f for f in warnings.filters if f not in before]
            for logger, log_filter in LOG_FILTERS.items():
                logging.getLogger(logger).addFilter(log_filter)
        _depth += 1


def _leave() -> None:
    global _depth
    with _lock:
        _depth -= 1
        if _depth == 0:
            for entry in _added:
                if entry in warnings.filters:
                    warnings.filters.remove(entry)
            _added.clear()
            for logger, log_filter in LOG_FILTERS.items():
                logging.getLogger(logger).removeFilter(log_filter)
            getattr(warnings, "_filters_mutated", lambda: None)()  # drops cached decisions


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the messages autoquant knows (``SILENCED``) for the duration of its own calls.

    Scopes nest and may overlap across threads (a search's trials run in threads): the filters
    are added by the outermost scope and removed when the last one ends, so a user's own
    warning filters are never replaced, and ``import autoquant`` changes none.
    """
    _enter()
    try:
        yield
    finally:
        _leave()


def quietly(function: Callable) -> Callable:
    """``function`` run inside ``quiet()``."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with quiet():
            return function(*args, **kwargs)

    return wrapper

"""Quantized engines (backends) and the context that makes one of them current."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

from autoquant._validation import check_choice

#: The quantized engines autoquant can target, with what each one is for.
BACKENDS: dict[str, str] = {
    "x86": "Intel/AMD servers and desktops (fbgemm and onednn kernels, chosen per op)",
    "fbgemm": "x86 servers, the older default engine",
    "qnnpack": "ARM phones and small CPUs (the mobile engine)",
    "onednn": "Intel CPUs through oneDNN, best at large batches",
}

# torch keeps the engine in one process-wide setting; a lock keeps two threads of one study
# (n_jobs > 1) from switching it under each other's feet.
_ENGINE_LOCK = threading.RLock()


def check_backend(backend: str, owner: str = "QuantConfig") -> str:
    check_choice(owner, "backend", backend, BACKENDS)
    if backend not in torch.backends.quantized.supported_engines:
        from autoquant.errors import UnsupportedError

        raise UnsupportedError(
            f"The backend {backend!r} is not built into this torch "
            f"({torch.__version__}); available: {torch.backends.quantized.supported_engines}."
        )
    return backend


@contextlib.contextmanager
def quantized_engine(backend: str) -> Iterator[None]:
    """Make ``backend`` torch's quantized engine for the duration of the block."""
    with _ENGINE_LOCK:
        previous = torch.backends.quantized.engine
        torch.backends.quantized.engine = backend
        try:
            yield
        finally:
            torch.backends.quantized.engine = previous

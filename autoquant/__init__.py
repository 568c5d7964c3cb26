"""autoquant: find the fastest or smallest quantized model within an accuracy-drop budget."""

from autoquant._warnings import silence_torch_ao_warnings

silence_torch_ao_warnings()

from autoquant.apply import apply  # noqa: E402
from autoquant.config import QuantConfig  # noqa: E402
from autoquant.errors import (  # noqa: E402
    AutoQuantError,
    ConfigError,
    DataError,
    ModelError,
    UnsupportedError,
)
from autoquant.methods import available_methods, capabilities, register_method  # noqa: E402
from autoquant.quantized import QuantizedModel  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "AutoQuantError",
    "ConfigError",
    "DataError",
    "ModelError",
    "QuantConfig",
    "QuantizedModel",
    "UnsupportedError",
    "apply",
    "available_methods",
    "capabilities",
    "register_method",
]

"""autoquant: find the fastest or smallest quantized model within an accuracy-drop budget.

The public API::

    autoquant.search(task, budget, space)   -> Recommendation   (an Optuna study, see search)
    autoquant.apply(model, config, calib)   -> QuantizedModel   (rebuild any configuration)
    autoquant.inspect(model, example)       -> ModelReport      (what quantization can touch)
    autoquant.load(folder)                  -> a saved recommendation, ready to run

MLflow tracking lives in ``autoquant.tracking`` (``MlflowTracker``), the built-in task and
model zoo in ``autoquant.tasks``.
"""

from autoquant._warnings import silence_torch_ao_warnings

silence_torch_ao_warnings()

from autoquant.analysis import inspect  # noqa: E402
from autoquant.apply import apply  # noqa: E402
from autoquant.budget import Budget  # noqa: E402
from autoquant.config import QuantConfig  # noqa: E402
from autoquant.errors import (  # noqa: E402
    AutoQuantError,
    ConfigError,
    DataError,
    ModelError,
    UnsupportedError,
)
from autoquant.export import load  # noqa: E402
from autoquant.measure import Metrics, Scenario  # noqa: E402
from autoquant.methods import available_methods, capabilities, register_method  # noqa: E402
from autoquant.quantized import QuantizedModel  # noqa: E402
from autoquant.recommend import Recommendation  # noqa: E402
from autoquant.study import search  # noqa: E402
from autoquant.tasks import Task  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "AutoQuantError",
    "Budget",
    "ConfigError",
    "DataError",
    "Metrics",
    "ModelError",
    "QuantConfig",
    "QuantizedModel",
    "Recommendation",
    "Scenario",
    "Task",
    "UnsupportedError",
    "apply",
    "available_methods",
    "capabilities",
    "inspect",
    "load",
    "register_method",
    "search",
]

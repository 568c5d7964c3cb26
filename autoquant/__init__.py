"""autoquant: find the fastest or smallest quantized model within an accuracy-drop budget.

The public API::

    autoquant.search(task, budget, space)   -> Recommendation   (an Optuna study, see search;
                                                                  settings: SearchOptions)
    autoquant.apply(model, config, calib)   -> QuantizedModel   (rebuild any configuration)
    autoquant.inspect(model, example)       -> ModelReport      (what quantization can touch)
    autoquant.load(folder)                  -> a saved recommendation, ready to run

MLflow tracking lives in ``autoquant.tracking`` (``MlflowTracker``), the built-in task and
model zoo in ``autoquant.tasks``.
"""

from autoquant.engine.apply import apply
from autoquant.engine.budget import Budget
from autoquant.engine.config import QuantConfig
from autoquant.engine.export import load
from autoquant.engine.methods import available_methods, capabilities, register_method
from autoquant.engine.quantized import QuantizedModel
from autoquant.errors import (
    AutoQuantError,
    ConfigError,
    DataError,
    ModelError,
    UnsupportedError,
)
from autoquant.measure import Metrics, Scenario
from autoquant.measure.inspect import inspect
from autoquant.recommend.recommendation import Recommendation
from autoquant.study.options import SearchOptions
from autoquant.study.run import search
from autoquant.tasks import Task

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
    "SearchOptions",
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

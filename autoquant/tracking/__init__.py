"""MLflow: every trial as a child run of its study's run, the recommendation and its model
logged and loadable, the studies listed (``tracker``), and the MLflow UI (``ui``).

The only place ``mlflow`` is imported. May import the engine, ``report`` and ``measure``;
nothing that searches or recommends.
"""

from autoquant.tracking.tracker import MlflowTracker

__all__ = ["MlflowTracker"]

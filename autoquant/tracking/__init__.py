"""MLflow: every trial as a child run of its study's run, the recommendation and its model
logged and loadable, the studies listed (``tracker``), and the MLflow UI (``ui``).

The trial record (``record``): the names a trial's facts are stored under in Optuna. The only
place ``mlflow`` is imported. May import the engine, ``report`` and ``measure``;
nothing that searches or recommends.
"""

__all__ = ["MlflowTracker"]


def __getattr__(name: str):
    # MLflow loads only when a tracker is asked for: the trial record below needs none of it
    if name == "MlflowTracker":
        from autoquant.tracking.tracker import MlflowTracker

        return MlflowTracker
    raise AttributeError(f"module 'autoquant.tracking' has no attribute {name!r}")

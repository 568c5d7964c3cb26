import hashlib
import os
import sys

import pytest
import torch

from autoquant._warnings import SILENCED
from autoquant.tasks import digits_task


def checksum(model: torch.nn.Module) -> str:
    """A digest of every parameter and buffer: equal digests mean an unchanged model."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def pytest_configure(config):
    # pytest resets warning filters per test; re-apply autoquant's one list of silenced messages.
    for message in SILENCED:
        config.addinivalue_line("filterwarnings", f"ignore:{message}")


@pytest.fixture(scope="session")
def cnn_task():
    return digits_task("cnn")


@pytest.fixture(scope="session")
def mlp_task():
    return digits_task("mlp")


@pytest.fixture(scope="session")
def lstm_task():
    return digits_task("lstm")


@pytest.fixture(scope="session")
def transformer_task():
    return digits_task("transformer")


@pytest.fixture(autouse=True)
def clean_environment():
    """Every test starts from the same process environment and MLflow tracking URI: nothing a
    test (or the code it runs) sets leaks into the next one."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    if "mlflow" in sys.modules:  # MLflow's global URI, which set_tracking_uri also changes
        from mlflow.tracking._tracking_service import utils

        utils._tracking_uri = None

"""Only the exact messages autoquant knows are silenced, only while autoquant's own functions
run; everything else still reaches the user."""

import logging
import subprocess
import sys
import warnings

import torch

from autoquant import QuantConfig, apply
from autoquant._warnings import quiet


def test_importing_autoquant_changes_no_warning_filter():
    # (torch, MLflow and the libraries they import add filters of their own when imported)
    check = (
        "import logging, warnings; import autoquant; from autoquant._warnings import SILENCED; "
        "ours = [f for f in warnings.filters if f[1] is not None and f[1].pattern in SILENCED]; "
        "assert not ours, ours; "
        "assert not logging.getLogger('torch.utils._pytree').filters, 'log filter added'"
    )
    subprocess.run([sys.executable, "-c", check], check=True)


def test_autoquant_calls_are_quiet_and_leave_the_filters_as_they_were(cnn_task):
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()  # none of the test runner's filters: every warning shows
        warnings.simplefilter("always")
        filters = list(warnings.filters)
        apply(cnn_task.model, QuantConfig(calibration_batches=1), cnn_task.calibration_data)
        assert warnings.filters == filters
        warnings.warn("torch.ao.quantization is deprecated (said outside autoquant)", stacklevel=1)
    messages = [str(w.message) for w in caught]
    # torch.ao warns on every prepare/convert; inside apply it was silenced, outside it is not
    assert messages == ["torch.ao.quantization is deprecated (said outside autoquant)"]


def test_torchs_logged_compile_noise_is_dropped_and_other_messages_pass(caplog):
    logger = logging.getLogger("torch.utils._pytree")
    with caplog.at_level(logging.WARNING, logger="torch.utils._pytree"), quiet():
        logger.warning(
            "<enum 'KernelPreference'> is an Enum subclass and is now natively supported by "
            "torch.compile as an opaque value type."
        )
        logger.warning("a message autoquant does not know")
    assert [r.getMessage() for r in caplog.records] == ["a message autoquant does not know"]


def test_exporting_an_lstm_does_not_warn_about_its_packed_weights(lstm_task):
    example = next(iter(lstm_task.validation_data))[0][:2]
    with warnings.catch_warnings(record=True) as caught, quiet():  # as autoquant exports it
        torch.export.export(lstm_task.model, (example,))
    assert not [w for w in caught if "_flat_weights" in str(w.message)]

"""Only the exact messages autoquant knows are silenced; everything else still reaches the user."""

import logging
import warnings

import torch

import autoquant  # noqa: F401 - installs the filters


def test_torchs_logged_compile_noise_is_dropped_and_other_messages_pass(caplog):
    logger = logging.getLogger("torch.utils._pytree")
    with caplog.at_level(logging.WARNING, logger="torch.utils._pytree"):
        logger.warning(
            "<enum 'KernelPreference'> is an Enum subclass and is now natively supported by "
            "torch.compile as an opaque value type."
        )
        logger.warning("a message autoquant does not know")
    assert [r.getMessage() for r in caplog.records] == ["a message autoquant does not know"]


def test_exporting_an_lstm_does_not_warn_about_its_packed_weights(lstm_task):
    example = next(iter(lstm_task.validation_data))[0][:2]
    with warnings.catch_warnings(record=True) as caught:
        torch.export.export(lstm_task.model, (example,))
    assert not [w for w in caught if "_flat_weights" in str(w.message)]

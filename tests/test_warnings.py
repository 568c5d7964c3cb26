"""Only the exact messages autoquant knows are silenced; everything else still reaches the user."""

import logging

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

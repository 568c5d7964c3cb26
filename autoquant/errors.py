"""The exceptions autoquant raises: one base class, one subclass per kind of problem."""


class AutoQuantError(Exception):
    """Base class of every error autoquant raises on purpose."""


class ConfigError(AutoQuantError, ValueError):
    """A parameter, configuration or file has a value autoquant cannot use."""


class UnsupportedError(AutoQuantError):
    """The combination asked for (method, backend, model) cannot work; the message says why."""


class DataError(AutoQuantError, ValueError):
    """The data given (calibration, evaluation, training) cannot be used as it is."""


class ModelError(AutoQuantError):
    """The model fails on the data it was given, before any quantization."""

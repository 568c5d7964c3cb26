"""The engine: what a quantized model is, and how it is built, saved and loaded.

Owns the QuantConfig and Budget, the method registry (``methods/``, one file a method, with the
facts about each in its registration), observers, backends, quantizable layers, batches of
any structure (``data``), ``apply`` (a config to a QuantizedModel), torch.compile and export.
It imports nothing of autoquant above it: only ``autoquant.errors``, ``_validation`` and
``_warnings``.
"""

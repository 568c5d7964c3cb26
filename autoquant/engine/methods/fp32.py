"""fp32: the float model itself, the baseline every other method is measured against."""

from autoquant.engine.methods import register_method
from autoquant.engine.methods.base import Method


@register_method
class Float32(Method):
    name = "fp32"
    simplicity = 0
    summary = (
        "No quantization: the float model (with compile: inductor, compiled with weights "
        "frozen), the baseline every candidate is compared with."
    )
    uses = frozenset({"compile"})
    no_compile_reason = ""

    def quantize(self, model, config, **_):
        return model

"""torchao_dynamic_int8: torchao ``quantize_`` int8 weights, int8 activations at run time."""

from autoquant.engine.backends import BACKENDS
from autoquant.engine.methods import register_method
from autoquant.engine.methods._torchao import QuantizeMethod, granularity


@register_method
class TorchaoDynamicInt8(QuantizeMethod):
    name = "torchao_dynamic_int8"
    requires = "linear"
    summary = (
        "torchao quantize_: int8 weights, activations quantized per row at run time "
        "(Int8DynamicActivationInt8WeightConfig); Linear layers; run through torch.compile."
    )
    uses = frozenset({"weight_observer", "keep_float"})
    mode = "dynamic"
    notes = {
        backend: (
            "on CPUs without VNNI (AVX2 only) the compiled model departed from eager (measured "
            "on an AMD EPYC: by 7.6 of 31.5 on the MLP); autoquant refuses such a model"
        )
        for backend in BACKENDS
    }

    def torchao_config(self, config):
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig

        # set_inductor_config=False: torchao would otherwise change Inductor's process-wide
        # settings; autoquant compiles every model with the same options (autoquant.engine.compile).
        return Int8DynamicActivationInt8WeightConfig(
            granularity=granularity(config), set_inductor_config=False
        )

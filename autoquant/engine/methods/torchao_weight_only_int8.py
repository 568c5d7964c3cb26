"""torchao_weight_only_int8: torchao ``quantize_`` int8 weights, float activations."""

from autoquant.engine.methods import register_method
from autoquant.engine.methods._torchao import QuantizeMethod, granularity


@register_method
class TorchaoWeightOnlyInt8(QuantizeMethod):
    name = "torchao_weight_only_int8"
    requires = "linear"
    summary = (
        "torchao quantize_: int8 weights dequantized in the matmul, float activations "
        "(Int8WeightOnlyConfig); Linear layers; run through torch.compile."
    )
    uses = frozenset({"weight_observer", "keep_float"})
    mode = "weight_only"

    def torchao_config(self, config):
        from torchao.quantization import Int8WeightOnlyConfig

        # set_inductor_config=False: see torchao_dynamic_int8.
        return Int8WeightOnlyConfig(granularity=granularity(config), set_inductor_config=False)

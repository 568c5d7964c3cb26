"""pt2e_static_int8: torchao PT2E static int8, deployed through torch.compile (Inductor).

The model is captured with ``torch.export``, annotated by a quantizer, calibrated and
converted to a graph of quantize/dequantize pairs around float ops; Inductor (with freezing)
lowers those patterns to int8 oneDNN kernels on x86. The backend picks the quantizer:
``x86`` -> ``X86InductorQuantizer``, ``qnnpack`` -> ``XNNPACKQuantizer`` (the mobile target).
"""

from __future__ import annotations

import dataclasses
import functools

from autoquant.engine.layers import quantizable_layers
from autoquant.engine.methods import register_method
from autoquant.engine.methods._static import calibrate
from autoquant.engine.methods._torchao import (
    ENGINE,
    export_program,
    graph_layer_modes,
    require_torchao,
)
from autoquant.engine.methods.base import Method

# The torchao observers by the names autoquant's configs use.
_OBSERVER_NAMES = {
    "minmax": "MinMaxObserver",
    "moving_average_minmax": "MovingAverageMinMaxObserver",
    "histogram": "HistogramObserver",
}


@functools.cache
def _percentile_observer():
    """torchao's HistogramObserver with the range cut at percentiles, as
    ``autoquant.engine.observers.PercentileObserver`` does for torch.ao."""
    from torchao.quantization.pt2e.observer import HistogramObserver

    from autoquant.engine import observers

    class PercentileObserver(HistogramObserver):
        def _non_linear_param_search(self):
            return observers.percentile_range(self.histogram, self.min_val, self.max_val)

    return PercentileObserver


_NOT_X86_QUANTIZER = (
    "torchao's PT2E has no quantizer for this engine; use 'x86' (X86InductorQuantizer, the "
    "oneDNN/fbgemm int8 kernels through Inductor) or 'qnnpack' (XNNPACKQuantizer)"
)


def _activation_config(base, config):
    """``base`` (a quantizer's QuantizationConfig) with the activation observer of ``config``."""
    from torchao.quantization.pt2e import observer

    name = config.activation_observer
    observer_class = (
        _percentile_observer() if name == "percentile" else getattr(observer, _OBSERVER_NAMES[name])
    )
    ctr = observer_class.with_args(eps=2**-12)
    act = dataclasses.replace(base.input_activation, observer_or_fake_quant_ctr=ctr)
    return dataclasses.replace(base, input_activation=act, output_activation=act)


def _x86_quantizer(config, kept: list[str]):
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    base = get_default_x86_inductor_quantization_config(reduce_range=config.reduce_range)
    quantizer = X86InductorQuantizer().set_global(_activation_config(base, config))
    for name in kept:
        quantizer.set_module_name_qconfig(name, None)  # None: leave this module float
    return quantizer


def _xnnpack_quantizer(config, kept: list[str]):
    # torchao 0.18 keeps XNNPACKQuantizer under torchao.testing (ExecuTorch holds the product
    # copy); it annotates the same patterns ExecuTorch's XNNPACK delegate runs in int8.
    from torchao.testing.pt2e._xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    # Symmetric int8 activations; reduce_range takes one bit off them, as torch.ao does.
    qmin, qmax = (-64, 63) if config.reduce_range else (-128, 127)
    base = get_symmetric_quantization_config(is_per_channel=True, act_qmin=qmin, act_qmax=qmax)
    quantizer = XNNPACKQuantizer().set_global(_activation_config(base, config))
    for name in kept:
        # set_module_name asserts a config, but its table takes None: the annotator skips a
        # None entry and the global config leaves every listed name alone. Including the chosen
        # layers by name instead does not work: conv-bn-relu patterns span three modules.
        quantizer.module_name_config[name] = None
    return quantizer


def _export_for_quantizer(model, example):
    """The graph the quantizer annotates, each call of a layer module marked as its own source.

    The quantizer groups nodes into patterns by their source (``source_fn_stack``), which only
    strict export records; without it, it groups them by module name, and a module called twice
    (torchvision's ResNet ``BasicBlock`` calls ``self.relu`` twice) makes one pattern with two
    outputs: X86InductorQuantizer failed with "Input partition has more than one output node".
    Strict export records it but fails on models Dynamo cannot trace, and clears Dynamo's
    caches: every model compiled before it compiles again on its next call (torchao's own
    pattern exports do too; ``autoquant.engine.compile.inductor_settings``). So the non-strict graph
    gets the source of every node inside a leaf module: that call's own key (``relu``,
    ``relu@1``, ...) and the module's class, as strict export would record it.
    """
    graph = export_program(model, example).module()
    for node in graph.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if node.op != "call_function" or not stack or node.meta.get("source_fn_stack"):
            continue
        call, (name, _) = list(stack.items())[-1]
        try:
            module = model.get_submodule(name)
        except AttributeError:
            continue
        if name and not any(True for _ in module.children()):
            node.meta["source_fn_stack"] = [(call, type(module))]
    # Non-strict export keeps computations whose result nothing reads (a BERT pooler's tanh
    # when only the hidden states are returned); the quantizer then finds a pattern with no
    # output node and fails with IndexError in _get_output_nodes_of_partitions.
    graph.graph.eliminate_dead_code()
    graph.recompile()
    return graph


def _drop_unused_attributes(graph_module):
    """Delete the float weights convert_pt2e leaves behind (the graph reads their int8 copies),
    so the state_dict and the serialized size hold what runs."""
    used = {node.target for node in graph_module.graph.nodes if node.op == "get_attr"}
    for name in [n for n in graph_module.state_dict() if n not in used]:
        owner, _, attr = name.rpartition(".")
        delattr(graph_module.get_submodule(owner) if owner else graph_module, attr)
    return graph_module


@register_method
class Pt2eStaticInt8(Method):
    name = "pt2e_static_int8"
    requires = "export"
    summary = (
        "torchao PT2E: int8 weights (per channel) and activations, calibrated; torch.export "
        "graph run through torch.compile (x86: X86InductorQuantizer, qnnpack: XNNPACKQuantizer)."
    )
    uses = frozenset(
        {"backend", "activation_observer", "reduce_range", "keep_float", "calibration_batches"}
    )
    needs_calibration = True
    engine = ENGINE
    compiled = True
    unsupported_backends = {"fbgemm": _NOT_X86_QUANTIZER, "onednn": _NOT_X86_QUANTIZER}
    notes = {
        "x86": "weights per-channel symmetric (the quantizer's only choice)",
        "qnnpack": (
            "XNNPACK graph for ExecuTorch; here it runs eagerly as reference quantize/dequantize "
            "ops: Inductor's x86 lowering refuses its signed int8 activations"
        ),
    }

    def deploys_compiled(self, config):
        # Measured: torch.compile of the XNNPACK graph fails with "quantized::
        # packed_weights_conv2drelu: Input tensor should have uint8 (unsigned char) or fp8 data
        # type"; the x86 oneDNN lowering matches the pattern but takes unsigned activations only.
        return config.backend != "qnnpack"

    def quantize(self, model, config, *, layers, calibration_inputs, **_):
        require_torchao()
        from torchao.quantization.pt2e import allow_exported_model_train_eval
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        everything = [layer.name for layer in quantizable_layers(model)]
        kept = [name for name in everything if name not in set(layers)]
        if config.backend == "qnnpack":
            quantizer = _xnnpack_quantizer(config, kept)
        else:
            quantizer = _x86_quantizer(config, kept)
        graph = _export_for_quantizer(model, calibration_inputs[0])
        prepared = prepare_pt2e(graph, quantizer)
        calibrate(prepared, calibration_inputs)
        # An exported graph refuses .eval(); autoquant (and users) call it on every model.
        return allow_exported_model_train_eval(_drop_unused_attributes(convert_pt2e(prepared)))

    def layer_modes(self, quantized):
        return graph_layer_modes(quantized)

"""What the ONNX Runtime methods share: the float model exported once per search, the ONNX nodes
of each PyTorch layer, and the layer map read back from the quantized graph.

ONNX Runtime quantizes an ONNX graph, not a torch module: the layers the search keeps in float
become the nodes it leaves alone (``nodes_to_quantize`` names the others), and the model is
measured in the ONNX Runtime session it deploys in (``autoquant.engine.ort.OrtModule``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn
from torch.utils import _pytree as pytree

from autoquant.engine.methods.base import Method
from autoquant.engine.ort import OrtModule, export_onnx, strip_metadata
from autoquant.errors import UnsupportedError

#: Every ONNX Runtime method registers with this engine name (the capability table shows it).
ENGINE = "onnxruntime"

#: The ONNX operators a PyTorch layer becomes (Linear: MatMul or Gemm; Conv: Conv; LSTM).
LAYER_OPS = ("MatMul", "Gemm", "Conv", "LSTM")

#: autoquant's int8 types (``activation_dtype``, ``weight_dtype``) as ONNX Runtime's QuantType.
QUANT_TYPES = {"quint8": "QUInt8", "qint8": "QInt8"}

_SCOPES = "pkg.torch.onnx.name_scopes"


def layer_nodes(proto, layers: Sequence[str]) -> dict[str, str]:
    """ONNX node name -> the PyTorch layer (of ``layers``) it computes, for the nodes of
    ``LAYER_OPS``.

    The exporter records each node's module path (its name scopes); a convolution folded with
    the batch norm after it carries the batch norm's path, but keeps the convolution's weight
    name (``<layer>.weight``), which then decides.
    """
    names = set(layers)
    found = {}
    for node in proto.graph.node:
        if node.op_type not in LAYER_OPS:
            continue
        meta = {p.key: p.value for p in node.metadata_props}
        scopes = [s.strip(" '\"") for s in meta.get(_SCOPES, "").strip("[]").split(",")]
        owners = [s for s in scopes if s in names]
        if not owners:
            owners = [i[: -len(".weight")] for i in node.input if i.endswith(".weight")]
            owners = [o for o in owners if o in names]
        if owners:
            found[node.name] = owners[-1]
    return found


def quantized_nodes(proto, nodes: dict[str, str]) -> set[str]:
    """Which of ``nodes`` (name -> layer) ``proto``, their quantized graph, runs in int8: the
    node was replaced by an integer operator (dynamic), or its weight comes through a
    DequantizeLinear (QDQ)."""
    float_nodes = {n.name: n for n in proto.graph.node}
    dequantized = {o for n in proto.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    result = set()
    for name in nodes:
        node = float_nodes.get(name)
        if node is None or node.op_type not in LAYER_OPS:
            result.add(name)
        elif len(node.input) > 1 and node.input[1] in dequantized:
            result.add(name)
    return result


def gemm_as_matmul(proto, names: set[str]):
    """A copy of ``proto`` where the Gemm nodes named in ``names`` (a Linear on 2-D inputs) are
    MatMul + Add, which ONNX Runtime's dynamic quantization takes; the MatMul keeps the name."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    result = onnx.ModelProto()
    result.CopyFrom(proto)
    weights = {i.name: i for i in result.graph.initializer}
    nodes = []
    for node in result.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0
        if (
            node.op_type != "Gemm"
            or node.name not in names
            or attrs.get("transA", 0)
            or not plain
            or node.input[1] not in weights
        ):
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(weights[node.input[1]])
        weight = np.ascontiguousarray(weight.T if attrs.get("transB", 0) else weight)
        weight_name = f"{node.input[1]}_matmul"
        result.graph.initializer.append(numpy_helper.from_array(weight, weight_name))
        has_bias = len(node.input) > 2 and node.input[2]
        product = f"{node.output[0]}_matmul" if has_bias else node.output[0]
        matmul = helper.make_node("MatMul", [node.input[0], weight_name], [product], name=node.name)
        matmul.metadata_props.extend(node.metadata_props)
        nodes.append(matmul)
        if has_bias:
            nodes.append(
                helper.make_node(
                    "Add", [product, node.input[2]], [node.output[0]], name=f"{node.name}_bias"
                )
            )
    del result.graph.node[:]
    result.graph.node.extend(nodes)
    used = {name for node in result.graph.node for name in node.input}
    kept = [i for i in result.graph.initializer if i.name in used]
    del result.graph.initializer[:]
    result.graph.initializer.extend(kept)
    return result


def _fingerprint(model: nn.Module, example) -> str | None:
    """What the exported graph depends on: the model's class, its module tree (its repr), each
    module's plain settings (flags, sizes, names), every weight and buffer, and the example's
    structure, shapes and dtypes. None where a weight cannot be read as bytes (then nothing is
    cached)."""
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{type(model).__module__}.{type(model).__qualname__}\n{model!r}".encode())
    plain = (bool, int, float, str, type(None), tuple)
    for name, module in model.named_modules():
        settings = sorted((k, repr(v)) for k, v in vars(module).items() if isinstance(v, plain))
        digest.update(f"{name}:{settings}".encode())
    try:
        for name, tensor in model.state_dict(keep_vars=False).items():
            flat = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes())
    except (RuntimeError, TypeError):  # a quantized, sparse or meta tensor: no cache
        return None
    leaves, spec = pytree.tree_flatten(example)
    shapes = [
        (str(x.dtype), tuple(x.shape)) if isinstance(x, torch.Tensor) else repr(x) for x in leaves
    ]
    digest.update(f"{spec}{shapes}".encode())
    return digest.hexdigest()


#: The last float export (fingerprint, OrtModule): a search exports the same float model each
#: trial; on all-MiniLM-L6-v2 (2 cores) the export took 4 to 9 s, the fingerprint 0.09 s. One
#: entry bounds the memory.
_LAST_EXPORT: list[tuple[str, OrtModule]] = []


def exported_once(model: nn.Module, example) -> OrtModule:
    """``export_onnx(model, example, keep_scopes=True)``, reused while the model's weights, its
    structure and the example's shapes are the same (the trials of one search)."""
    key = _fingerprint(model, example)
    if key is not None and _LAST_EXPORT and _LAST_EXPORT[0][0] == key:
        return _LAST_EXPORT[0][1]
    exported = export_onnx(model, example, keep_scopes=True)
    _LAST_EXPORT[:] = [(key, exported)] if key is not None else []
    return exported


@contextlib.contextmanager
def _quiet_root_log() -> Iterator[None]:
    """ONNX Runtime's quantizer warns on the root logger that the graph was not pre-processed
    (ONNX Runtime's own optimizations, skipped on purpose: they rename the nodes that map the
    layers). Held back while it runs; the root logger's level is restored after."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


class OrtMethod(Method):
    """An ONNX Runtime method: export the float model, let ``transform`` rewrite the ONNX graph
    (quantize it), run the result in an ONNX Runtime session."""

    engine = ENGINE
    requires = "onnx"
    no_compile_reason = (
        "ONNX Runtime runs its own graph optimizations and kernels; torch.compile does not apply"
    )
    #: (mode, weight dtype) the quantized layers are reported with.
    quantized_as: ClassVar[tuple[str, str]] = ("float", "float32")

    def transform(
        self,
        proto,
        config,
        *,
        nodes: dict[str, str],
        float_nodes: list[str],
        calibration_feeds: list[dict],
        folder: Path,
    ):
        """Return the ONNX model ``config`` asks for, given the float one.

        Args:
            proto: The float model's ONNX graph.
            config: The validated configuration.
            nodes: ONNX node -> layer, for the nodes of the layers chosen for quantization.
            float_nodes: The other ``LAYER_OPS`` nodes (layers kept in float, and products
                that are no layer, such as attention's scores): they stay in float.
            calibration_feeds: The calibration inputs as ONNX Runtime feeds (name -> array).
            folder: A scratch directory.
        """
        return proto

    def quantize(self, model, config, *, layers, calibration_inputs, **_):
        import onnx

        exported = exported_once(model, calibration_inputs[0])
        proto = onnx.load_from_string(exported.onnx_bytes)
        nodes = layer_nodes(proto, layers)
        if self.quantized_as[0] != "float" and not nodes:
            raise UnsupportedError(
                f"{self.name} found no ONNX node of the chosen layers to quantize (it quantizes "
                f"the {', '.join(LAYER_OPS)} nodes of Linear, Conv and LSTM layers)."
            )
        float_nodes = [n.name for n in proto.graph.node if n.op_type in LAYER_OPS]
        float_nodes = [n for n in float_nodes if n not in nodes]
        feeds = [exported.feed(x) for x in calibration_inputs]
        with tempfile.TemporaryDirectory(prefix="autoquant-ort-") as folder, _quiet_root_log():
            try:
                result = self.transform(
                    proto,
                    config,
                    nodes=nodes,
                    float_nodes=float_nodes,
                    calibration_feeds=feeds,
                    folder=Path(folder),
                )
            except UnsupportedError:
                raise
            except Exception as err:  # noqa: BLE001 - ORT's quantizer failing on this graph
                raise UnsupportedError(
                    f"ONNX Runtime could not quantize this model as {config.label()}: "
                    f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300]}"
                ) from None
        done = self.converted(result, nodes) if result is not proto else set()
        strip_metadata(result)
        module = OrtModule(result.SerializeToString(), exported.output_spec, exported.input_order)
        module.layer_modes = {nodes[n]: self.quantized_as for n in done}
        return module

    def converted(self, result, nodes: dict[str, str]) -> set[str]:
        """Which of ``nodes`` the method turned into ``quantized_as`` in ``result``."""
        return quantized_nodes(result, nodes)

    def layer_modes(self, quantized: nn.Module) -> dict[str, tuple[str, str]] | None:
        return getattr(quantized, "layer_modes", {})


def feed_reader(feeds: list[dict]):
    """ONNX Runtime's CalibrationDataReader over ``feeds`` (input name -> array)."""
    from onnxruntime.quantization import CalibrationDataReader

    class FeedReader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter(feeds)

        def get_next(self) -> dict | None:
            return next(self._feeds, None)

    return FeedReader()

"""ONNX export and ONNX Runtime: a model exported to ONNX, run in an ``InferenceSession`` that is
called like the PyTorch model it came from.

Most CPU deployments run ONNX Runtime, not eager PyTorch; so its float model and its own int8
quantization are candidates of the search (the ``ort_*`` methods), measured in the session
itself. onnx and onnxruntime are optional: ``pip install 'autoquant[onnx]'``.
"""

from __future__ import annotations

import copy
import os
import warnings
from typing import Any

import torch
from torch import nn
from torch.utils import _pytree as pytree

from autoquant.engine.data import as_args, batch_length, concat
from autoquant.errors import UnsupportedError

#: The ONNX opset written; ONNX Runtime's quantizers and CPU kernels (1.32, tested) take it.
OPSET = 18

#: What to install for the ONNX methods and the model.onnx file.
INSTALL_HINT = "pip install 'autoquant[onnx]' (onnx, onnxruntime and onnxscript)"


def missing_reason() -> str | None:
    """Why ONNX export or ONNX Runtime cannot be used here; None when they can."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401 - the exporter of torch.onnx.export(dynamo=True)
    except ImportError as err:
        return f"the ONNX packages are not all installed ({err}); {INSTALL_HINT}"
    return None


def require_onnx() -> None:
    """Raise UnsupportedError, with what to install, when onnx or onnxruntime is missing."""
    reason = missing_reason()
    if reason:
        raise UnsupportedError(f"ONNX Runtime cannot be used: {reason}.")


def _tensor_leaves(args: tuple, kwargs: dict, order: tuple[str, ...]) -> list[torch.Tensor]:
    """The tensors of a model call in the order ONNX numbers its inputs: the positional, then
    the keyword arguments in ``order`` (the order they were exported in); other leaves
    (numbers, flags) are constants of the exported graph."""
    rank = {name: i for i, name in enumerate(order)}
    ordered = dict(sorted(kwargs.items(), key=lambda item: rank.get(item[0], len(rank))))
    leaves = pytree.tree_leaves((args, ordered))
    return [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]


def _array(tensor: torch.Tensor):
    return tensor.detach().cpu().contiguous().numpy()


def strip_metadata(proto) -> None:
    """Drop what the exporter notes on each node (module scopes, stack traces): a deployed
    model does not need them, and on a small model they weigh more than its int8 weights."""
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""


def export_onnx(model: nn.Module, example: Any, *, keep_scopes: bool = False) -> OrtModule:
    """Export ``model`` to ONNX with torch.export's graph and a dynamic batch dimension, and
    check it with the ONNX checker.

    Args:
        model: A float model in eval mode.
        example: One model input (a tensor, positional or keyword arguments).
        keep_scopes: Keep the exporter's notes on each node (its module scopes, which map the
            ONNX nodes to the layers); dropped by default.

    Returns:
        The ONNX model in an OrtModule, called like ``model``.

    Raises:
        UnsupportedError: onnx is missing, or the model cannot be exported or checked (why).
    """
    require_onnx()
    import onnx

    from autoquant.engine.methods._torchao import export_program

    # torch.export specializes a dimension of size 1: export on a batch of two.
    batch = example if batch_length(example) > 1 else concat([example, example])
    args, kwargs = as_args(batch)
    with torch.no_grad():
        spec = pytree.tree_structure(model(*args, **kwargs))
        program = export_program(model, batch, needed_by="ONNX export")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the exporter's progress and deprecations
                onnx_program = torch.onnx.export(
                    program, opset_version=OPSET, dynamo=True, verbose=False
                )
            proto = onnx_program.model_proto
            onnx.checker.check_model(proto, full_check=True)
            if not keep_scopes:
                strip_metadata(proto)
        except Exception as err:  # noqa: BLE001 - any exporter or checker failure: say which
            raise UnsupportedError(
                f"torch.onnx.export cannot export this model: {type(err).__name__}: "
                f"{str(err).strip().splitlines()[0][:300]}"
            ) from None
    return OrtModule(proto.SerializeToString(), spec, tuple(kwargs))


def worker_affinities(threads: int) -> str | None:
    """ONNX Runtime's ``session.intra_op_thread_affinities`` for ``threads`` intra-op threads:
    each of its ``threads - 1`` worker threads on a processor of its own, after the first this
    process may use (ONNX Runtime numbers processors from 1 and leaves the calling thread
    alone). None for one thread, or where the process may use fewer processors than threads.

    After torch's OpenMP threads ran, identical sessions of the digits CNN at 64 per call on
    two threads timed bimodally, as if a worker shared the calling thread's core: 0.55 to
    0.92 ms unpinned, 0.55 to 0.72 ms pinned, 0.51 ms alone (experiments/ONNX-sessions*.md).
    Pinning narrows that, it does not remove it. ONNX Runtime pins its workers itself when it
    picks the thread count.
    """
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if threads <= 1 or len(allowed) < threads:
        return None
    return ";".join(str(cpu + 1) for cpu in allowed[1:threads])


def session_options(threads: int):
    """ONNX Runtime session options for ``threads`` intra-op threads (the scenario's).

    Spinning is off: an idle ORT thread pool otherwise keeps spinning after each call, on the
    cores that the float model is timed on next in the interleaved rounds. The workers are
    pinned (``worker_affinities``).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    affinities = worker_affinities(threads)
    if affinities:
        options.add_session_config_entry("session.intra_op_thread_affinities", affinities)
    options.log_severity_level = 3  # errors only: its graph warnings ask nothing of the user
    return options


class OrtModule(nn.Module):
    """An ONNX model run in an ONNX Runtime ``InferenceSession``, called like the PyTorch model
    it was exported from: tensors in, the same output structure back.

    The ONNX bytes are a buffer, so the state_dict (and the serialized size autoquant reports)
    is the ONNX model itself. A session is made per thread count, the count torch is set to at
    the call: a scenario's ``threads`` then applies to ONNX Runtime too.

    Attributes:
        onnx_model: The serialized ONNX model (uint8 buffer).
        output_spec: The PyTorch model's output structure; None returns the session's outputs
            as they are (one tensor, or a tuple).
        input_order: The keyword arguments in the order they were exported in (a call's
            keyword arguments are fed by name, or in this order where the names differ).
    """

    def __init__(
        self,
        onnx_bytes: bytes,
        output_spec: pytree.TreeSpec | None = None,
        input_order: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        require_onnx()
        self.register_buffer(
            "onnx_model", torch.frombuffer(bytearray(onnx_bytes), dtype=torch.uint8)
        )
        self.output_spec = output_spec
        self.input_order = tuple(input_order)
        self._sessions: dict[int, Any] = {}
        session = self.session(1)
        # kept, so that feeding (calibration) needs no session for other thread counts
        self._input_names = [i.name for i in session.get_inputs()]
        outputs = len(session.get_outputs())
        if output_spec is not None and outputs != output_spec.num_leaves:
            raise UnsupportedError(
                f"The ONNX model has {outputs} output(s) where the PyTorch model returns "
                f"{output_spec.num_leaves} value(s) ({output_spec}); only tensors can be outputs "
                "of an ONNX model."
            )

    @property
    def onnx_bytes(self) -> bytes:
        return self.onnx_model.numpy().tobytes()

    def session(self, threads: int | None = None):
        """The InferenceSession for ``threads`` intra-op threads (default: torch's setting)."""
        import onnxruntime as ort

        threads = threads or torch.get_num_threads()
        if threads not in self._sessions:
            self._sessions[threads] = ort.InferenceSession(
                self.onnx_bytes, session_options(threads), providers=["CPUExecutionProvider"]
            )
        return self._sessions[threads]

    def feed(self, inputs: Any) -> dict[str, Any]:
        """The session's feed (input name -> numpy array) for one model input (a tensor,
        positional or keyword arguments, as ``autoquant.engine.data.call`` takes)."""
        args, kwargs = as_args(inputs)
        return self._feed(args, kwargs)

    def _feed(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        names = self._input_names
        named = all(isinstance(v, torch.Tensor) for v in kwargs.values())
        positional = _tensor_leaves(args, {}, ())
        rest = [n for n in names if n not in kwargs]
        if kwargs and named and set(kwargs) <= set(names) and len(positional) == len(rest):
            # the exporter names an input after its keyword: feed by name, any order
            feed = {**dict(zip(rest, positional, strict=True)), **kwargs}
            return {name: _array(feed[name]) for name in names}
        tensors = _tensor_leaves(args, kwargs, self.input_order)
        if len(tensors) != len(names):
            raise UnsupportedError(
                f"The ONNX model takes {len(names)} input tensor(s) ({names}); this call gave "
                f"{len(tensors)}. Call it with the inputs it was exported with."
            )
        return {name: _array(t) for name, t in zip(names, tensors, strict=True)}

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        outputs = [torch.from_numpy(a) for a in self.session().run(None, self._feed(args, kwargs))]
        if self.output_spec is None:
            return outputs[0] if len(outputs) == 1 else tuple(outputs)
        return pytree.tree_unflatten(outputs, self.output_spec)

    def structure(self) -> dict[str, Any]:
        """What rebuilds this module around its ONNX bytes (``from_structure``): the input
        order and the output structure (None when it cannot be written as JSON, as for a
        class registered without a serialized name)."""
        try:
            spec = pytree.treespec_dumps(self.output_spec) if self.output_spec else None
        except Exception:  # noqa: BLE001 - the outputs then come back as a tuple
            spec = None
        return {"input_order": list(self.input_order), "output_spec": spec}

    @classmethod
    def from_structure(cls, onnx_bytes: bytes, structure: dict[str, Any]) -> OrtModule:
        """The module ``structure()`` describes, around ``onnx_bytes``."""
        spec = structure.get("output_spec")
        return cls(
            onnx_bytes,
            pytree.treespec_loads(spec) if spec else None,
            tuple(structure.get("input_order", ())),
        )

    def __deepcopy__(self, memo: dict) -> OrtModule:
        # Sessions cannot be copied; a copy makes its own on first use.
        return OrtModule(self.onnx_bytes, copy.deepcopy(self.output_spec, memo), self.input_order)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_sessions"] = {}
        return state

    def extra_repr(self) -> str:
        return f"onnx_bytes={self.onnx_model.numel()}"


def output_difference(reference: nn.Module, candidate: nn.Module, example: Any) -> float:
    """The largest absolute difference between two models' output tensors on ``example``."""
    args, kwargs = as_args(example)
    with torch.no_grad():
        expected = pytree.tree_leaves(reference(*args, **kwargs))
        got = pytree.tree_leaves(candidate(*args, **kwargs))
    pairs = [
        (e, g)
        for e, g in zip(expected, got, strict=True)
        if isinstance(e, torch.Tensor) and e.is_floating_point()
    ]
    return max(((e - g.to(e.dtype)).abs().max().item() for e, g in pairs), default=0.0)

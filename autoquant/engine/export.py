"""Save a quantized model as TorchScript (torch.ao) or torch.export ``.pt2`` (torchao, and any
model deployed compiled), with its state_dict and config JSON, and load it back.

Beside it, ``model.onnx``: the model exported to ONNX where it can be (the float model, the
ONNX Runtime methods' models, which are ONNX already), with the largest difference between its
outputs in ONNX Runtime and PyTorch's; where it cannot, ``config.json`` says why.

A model whose speed comes from torch.compile (the torchao methods, ``compile: inductor``) is
saved with ``model.compile.md``, the compile settings and how to apply them, and ``load``
compiles it again: a saved file never silently runs at eager speed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autoquant._warnings import quietly
from autoquant.engine.backends import quantized_engine
from autoquant.engine.config import QuantConfig
from autoquant.engine.data import as_args, batch_length, concat
from autoquant.engine.quantized import QuantizedModel
from autoquant.errors import ConfigError

MODEL_FILE = "model.pt"
EXPORTED_FILE = "model.pt2"
STATE_FILE = "state_dict.pt"
CONFIG_FILE = "config.json"
COMPILE_NOTE_FILE = "model.compile.md"
ONNX_FILE = "model.onnx"


def deploys_compiled(config: QuantConfig) -> bool:
    """Whether ``config``'s models get their speed from torch.compile."""
    from autoquant.engine.methods import get_method

    return get_method(config.method).deploys_compiled(config)


def compile_note(config: QuantConfig) -> str:
    """How to run a compiled recommendation at the speed it was measured at."""
    from autoquant.engine.compile import INDUCTOR_OPTIONS

    return (
        f"# Deploy compiled\n\n`{config.label()}` was measured compiled with torch.compile "
        f"(Inductor, options {INDUCTOR_OPTIONS}, dynamic=False); run eagerly it loses that "
        "speed. `autoquant.load(folder)` compiles it again. By hand:\n\n"
        "```python\nimport torch\n\nprogram = torch.export.load('model.pt2')\n"
        "model = torch.compile(program.module(), dynamic=False)\n"
        f"with torch._inductor.config.patch({INDUCTOR_OPTIONS}), torch.no_grad():\n"
        "    model(example)  # the first call compiles (seconds); later calls are fast\n```\n\n"
        "Inductor writes the thread count into its kernels when it compiles: call "
        "`torch.set_num_threads(n)` with the threads you serve on before that first call. "
        "A later `torch.export` (or `torch._dynamo.reset()`) in the same process clears "
        "Dynamo's caches and the next call compiles again: make every call within the same "
        "`patch`, as `autoquant.load` does, so that compilation freezes the weights too.\n"
    )


def runs_in_onnx_runtime(config: QuantConfig) -> bool:
    """Whether ``config``'s models are ONNX models run in ONNX Runtime (the ``ort_*`` methods)."""
    from autoquant.engine.methods import get_method

    return get_method(config.method).engine == "onnxruntime"


def write_onnx(model: QuantizedModel, path: Path, example: Any) -> dict[str, Any]:
    """Write ``model`` as ONNX to ``path`` where it can be exported; returns what config.json
    records: the file, the structure that calls it like the PyTorch model and, for a model
    exported here, the largest output difference from PyTorch on ``example``; or the error."""
    from autoquant.engine.ort import OrtModule, export_onnx, missing_reason, output_difference

    onnx_module = model.module
    exported_here = not isinstance(onnx_module, OrtModule)
    info: dict[str, Any] = {}
    if exported_here:
        try:  # export, check, and run it in ONNX Runtime beside PyTorch
            onnx_module = export_onnx(model.module, example)
            info["max_abs_difference"] = output_difference(model, onnx_module, example)
        except Exception as err:  # noqa: BLE001 - the PyTorch model is still saved
            reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0][:400]}"
            if not missing_reason():
                reason += ". The ort_* methods quantize in ONNX Runtime and give an ONNX model."
            return {"error": reason}
    path.write_bytes(onnx_module.onnx_bytes)
    return {"file": path.name, **onnx_module.structure(), **info}


def is_exported(config: QuantConfig) -> bool:
    """Whether ``config``'s models are saved with torch.export (the torchao engine's) rather
    than TorchScript (which cannot hold torchao's graphs and tensor subclasses)."""
    from autoquant.engine.methods import get_method

    return get_method(config.method).engine == "torchao" or deploys_compiled(config)


def to_exported(model: QuantizedModel, example: Any) -> torch.export.ExportedProgram:
    """torch.export of the quantized module with a dynamic batch dimension."""
    from autoquant.engine.methods._torchao import export_program

    # torch.export specializes a dimension of size 1: export on a batch of two.
    batch = example if batch_length(example) > 1 else concat([example, example])
    with torch.no_grad():
        return export_program(model.module, batch)


def to_torchscript(model: QuantizedModel, example: Any) -> torch.jit.ScriptModule:
    """TorchScript of the quantized module: scripted, or traced on ``example`` when scripting
    fails (as it does for some eager-wrapped and recurrent models)."""
    with quantized_engine(model.config.backend), torch.no_grad():
        try:
            return torch.jit.script(model.module)
        except Exception:  # noqa: BLE001 - any scripting failure: fall back to tracing
            args, kwargs = as_args(example)
            if kwargs:
                return torch.jit.trace(
                    model.module, example_kwarg_inputs=kwargs, check_trace=False, strict=False
                )
            return torch.jit.trace(model.module, args, check_trace=False, strict=False)


@quietly
def save(
    model: QuantizedModel,
    out_dir: str | Path,
    example: Any,
    extra: dict | None = None,
    *,
    onnx: bool = True,
) -> dict[str, Path]:
    """Write ``model.pt`` (TorchScript; ``model.pt2``, torch.export, for torchao models;
    ``model.onnx`` for the ONNX Runtime methods), ``state_dict.pt`` and ``config.json`` to
    ``out_dir``; with ``onnx``, ``model.onnx`` too where the model exports to ONNX (config.json
    says how close it runs to PyTorch under ``onnx``, or why it cannot be exported).

    A model neither format can hold (say, one returning a dataclass, which TorchScript cannot
    trace) is saved without ``model.pt``; ``config.json`` says why under ``model_file_error``.

    ``autoquant.load(out_dir)`` reads the TorchScript back; ``autoquant.apply(model,
    QuantConfig.from_dict(json['config']), calibration_data)`` rebuilds it from the float model.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    exported = is_exported(model.config)
    in_onnx = runs_in_onnx_runtime(model.config)
    paths = {
        "model": out / (ONNX_FILE if in_onnx else EXPORTED_FILE if exported else MODEL_FILE),
        "state_dict": out / STATE_FILE,
        "config": out / CONFIG_FILE,
    }
    info = {"config": model.config.to_dict(), "layer_map": model.layer_map, **(extra or {})}
    if onnx or in_onnx:  # an ONNX Runtime model's model file is its ONNX model
        info["onnx"] = write_onnx(model, out / ONNX_FILE, example)
        if "file" in info["onnx"] and not in_onnx:
            paths["onnx"] = out / ONNX_FILE
    try:
        if exported and not in_onnx:
            torch.export.save(to_exported(model, example), paths["model"])
        elif not in_onnx:
            torch.jit.save(to_torchscript(model, example), str(paths["model"]))
    except Exception as err:  # noqa: BLE001 - the weights and config are still worth saving
        paths.pop("model")
        info["model_file_error"] = (
            f"{type(err).__name__}: {str(err).strip().splitlines()[0][:300]}. Rebuild the model "
            f"with autoquant.apply(model, QuantConfig.from_dict(config), calibration_data)."
        )
    torch.save(model.module.state_dict(), paths["state_dict"])
    paths["config"].write_text(json.dumps(info, indent=2, default=str))
    if deploys_compiled(model.config):
        paths["compile_note"] = out / COMPILE_NOTE_FILE
        paths["compile_note"].write_text(compile_note(model.config))
    return paths


class LoadedModel(nn.Module):
    """A model saved by autoquant (TorchScript, torch.export or ONNX), run on the engine it was
    quantized for; compiled again, as it was measured, when its config deploys compiled."""

    def __init__(self, scripted: nn.Module, config: QuantConfig, compile: bool = True) -> None:
        super().__init__()
        self.scripted = scripted
        self.config = config
        self._compiled = compile and deploys_compiled(config)
        if self._compiled:
            self.scripted = torch.compile(scripted, dynamic=False)

    def forward(self, *args, **kwargs):
        from autoquant.engine.compile import canonical, inductor_settings

        if not self._compiled:
            with quantized_engine(self.config.backend):
                return self.scripted(*args, **kwargs)
        args = tuple(canonical(a) for a in args)  # strides the compiled graph guards on
        kwargs = {k: canonical(v) for k, v in kwargs.items()}
        # The first call compiles with the measured settings; every call holds them, so a
        # recompilation (Dynamo's caches cleared, a new shape) gives the same frozen kernels.
        with quantized_engine(self.config.backend), inductor_settings():
            return self.scripted(*args, **kwargs)


@quietly
def load(path: str | Path, compile: bool = True) -> LoadedModel:
    """Load a model saved by ``save`` (or ``autoquant search --out``).

    Args:
        path: The folder ``save`` wrote.
        compile: Compile a model that was measured compiled (``model.compile.md``) again, with
            the same settings, on its first call; False runs the saved graph eagerly.
    """
    folder = Path(path)
    files = (MODEL_FILE, EXPORTED_FILE, ONNX_FILE)
    has_model = any((folder / name).is_file() for name in files)
    if not has_model or not (folder / CONFIG_FILE).is_file():
        raise ConfigError(
            f"{str(folder)!r} is not a saved autoquant model: it must hold {MODEL_FILE} (or "
            f"{EXPORTED_FILE}, or {ONNX_FILE}) and {CONFIG_FILE} (written by `autoquant search "
            f"--out` or autoquant.engine.export.save)."
        )
    info = json.loads((folder / CONFIG_FILE).read_text())
    config = QuantConfig.from_dict(info["config"])
    only_onnx = not any((folder / name).is_file() for name in (MODEL_FILE, EXPORTED_FILE))
    if runs_in_onnx_runtime(config) or only_onnx:
        from autoquant.engine.ort import OrtModule, require_onnx

        require_onnx()
        module = OrtModule.from_structure((folder / ONNX_FILE).read_bytes(), info.get("onnx", {}))
        return LoadedModel(module, config, compile=False)
    if (folder / EXPORTED_FILE).is_file():
        import torchao  # noqa: F401 - registers the torchao operators the graph calls
        # (compiled float models need no torchao, but the import is cheap and harmless)

        program = torch.export.load(folder / EXPORTED_FILE)
        return LoadedModel(program.module(), config, compile)
    with quantized_engine(config.backend):
        scripted = torch.jit.load(str(folder / MODEL_FILE), map_location="cpu")
    return LoadedModel(scripted.eval(), config)

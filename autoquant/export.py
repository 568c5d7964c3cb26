"""Save a quantized model as TorchScript (torch.ao) or torch.export ``.pt2`` (torchao), with its
state_dict and config JSON, and load it back."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from autoquant.backends import quantized_engine
from autoquant.config import QuantConfig
from autoquant.errors import ConfigError
from autoquant.quantized import QuantizedModel

MODEL_FILE = "model.pt"
EXPORTED_FILE = "model.pt2"
STATE_FILE = "state_dict.pt"
CONFIG_FILE = "config.json"


def is_exported(config: QuantConfig) -> bool:
    """Whether ``config``'s models are saved with torch.export (the torchao engine's) rather
    than TorchScript (which cannot hold torchao's graphs and tensor subclasses)."""
    from autoquant.methods import get_method

    return get_method(config.method).engine == "torchao"


def to_exported(model: QuantizedModel, example: torch.Tensor) -> torch.export.ExportedProgram:
    """torch.export of the quantized module with a dynamic batch dimension."""
    from autoquant.methods._torchao import export_program

    # torch.export specializes a dimension of size 1: export on a batch of two.
    batch = example if len(example) > 1 else torch.cat([example, example])
    with torch.no_grad():
        return export_program(model.module, batch)


def to_torchscript(model: QuantizedModel, example: torch.Tensor) -> torch.jit.ScriptModule:
    """TorchScript of the quantized module: scripted, or traced on ``example`` when scripting
    fails (as it does for some eager-wrapped and recurrent models)."""
    with quantized_engine(model.config.backend), torch.no_grad():
        try:
            return torch.jit.script(model.module)
        except Exception:  # noqa: BLE001 - any scripting failure: fall back to tracing
            return torch.jit.trace(model.module, example, check_trace=False)


def save(
    model: QuantizedModel, out_dir: str | Path, example: torch.Tensor, extra: dict | None = None
) -> dict[str, Path]:
    """Write ``model.pt`` (TorchScript; ``model.pt2``, torch.export, for torchao models),
    ``state_dict.pt`` and ``config.json`` to ``out_dir``.

    ``autoquant.load(out_dir)`` reads the TorchScript back; ``autoquant.apply(model,
    QuantConfig.from_dict(json['config']), calibration_data)`` rebuilds it from the float model.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    exported = is_exported(model.config)
    paths = {
        "model": out / (EXPORTED_FILE if exported else MODEL_FILE),
        "state_dict": out / STATE_FILE,
        "config": out / CONFIG_FILE,
    }
    if exported:
        torch.export.save(to_exported(model, example), paths["model"])
    else:
        torch.jit.save(to_torchscript(model, example), str(paths["model"]))
    torch.save(model.module.state_dict(), paths["state_dict"])
    info = {"config": model.config.to_dict(), "layer_map": model.layer_map, **(extra or {})}
    paths["config"].write_text(json.dumps(info, indent=2, default=str))
    return paths


class LoadedModel(nn.Module):
    """A model saved by autoquant (TorchScript or torch.export), run on the engine it was
    quantized for."""

    def __init__(self, scripted: nn.Module, config: QuantConfig) -> None:
        super().__init__()
        self.scripted = scripted
        self.config = config

    def forward(self, *args):
        with quantized_engine(self.config.backend):
            return self.scripted(*args)


def load(path: str | Path) -> LoadedModel:
    """Load a model saved by ``save`` (or ``autoquant search --out``)."""
    folder = Path(path)
    has_model = (folder / MODEL_FILE).is_file() or (folder / EXPORTED_FILE).is_file()
    if not has_model or not (folder / CONFIG_FILE).is_file():
        raise ConfigError(
            f"{str(folder)!r} is not a saved autoquant model: it must hold {MODEL_FILE} (or "
            f"{EXPORTED_FILE}) and {CONFIG_FILE} (written by `autoquant search --out` or "
            f"autoquant.export.save)."
        )
    config = QuantConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text())["config"])
    if (folder / EXPORTED_FILE).is_file():
        import torchao  # noqa: F401 - registers the torchao operators the graph calls

        program = torch.export.load(folder / EXPORTED_FILE)
        return LoadedModel(program.module(), config)
    with quantized_engine(config.backend):
        scripted = torch.jit.load(str(folder / MODEL_FILE), map_location="cpu")
    return LoadedModel(scripted.eval(), config)

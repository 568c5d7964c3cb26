import pytest
import torch
from torch import nn

from autoquant.cli import main
from autoquant.measure.inspect import inspect


def test_traceable_conv_model(cnn_task):
    report = inspect(cnn_task.model, cnn_task.validation_data[0][0][:1])
    assert [x.name for x in report.layers] == ["block1.0", "block2.0", "block3.0", "fc"]
    assert report.fx_traceable and report.fx_error is None
    assert sum(x.compute_share for x in report.layers) == pytest.approx(1.0)
    assert report.features["conv_share"] > 0.95
    # block2 (32->64 channels at 8x8) does the most multiply-accumulates
    assert max(report.layers, key=lambda x: x.macs).name == "block2.0"
    assert report.layers[1].macs == 64 * 8 * 8 * 32 * 9
    assert set(report.methods) == {
        "fp32",
        "dynamic_int8",
        "dynamic_fp16",
        "static_int8",
        "qat_int8",
        "pt2e_static_int8",
        "torchao_dynamic_int8",
        "torchao_weight_only_int8",
        "torchao_int4_weight_only",
        "ort_fp32",  # it exports to ONNX and runs in ONNX Runtime
        "ort_fp16",
        "ort_dynamic_int8",
        "ort_static_int8",
    }
    assert report.methods["dynamic_fp16"] == ["x86", "fbgemm"]
    assert report.methods["pt2e_static_int8"] == ["x86", "qnnpack"]
    assert report.float_latency_ms > 0 and report.size_bytes > 0
    assert "torch.fx: traceable" in report.table()
    assert report.output_linear == "fc"
    assert "classifier (the Linear that runs last): fc" in report.table()


def test_output_linear_follows_the_order_layers_run_not_the_order_they_are_declared():
    class HeadFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(8, 10)  # declared first, runs last
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            return self.head(self.conv(x).flatten(1)[:, :8])

    class ConvLast(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 64)
            self.conv = nn.Conv2d(1, 10, 8)

        def forward(self, x):
            return self.conv(self.fc(x.flatten(1)).view(-1, 1, 8, 8)).flatten(1)

    class SharedProjection(nn.Module):  # one Linear called first and again last
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(64, 64)
            self.mid = nn.Linear(64, 64)

        def forward(self, x):
            return self.proj(self.mid(self.proj(x.flatten(1))))

    example = torch.rand(1, 1, 8, 8)
    assert inspect(HeadFirst(), example).output_linear == "head"
    assert inspect(ConvLast(), example).output_linear is None
    assert inspect(SharedProjection(), example).output_linear == "proj"


def test_untraceable_model_says_where_it_breaks():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = x.flatten(1)
            if x.mean() > 0.5:  # data-dependent control flow
                x = x * 2
            return self.fc(x)

    report = inspect(Branchy(), torch.rand(1, 1, 8, 8))
    assert not report.fx_traceable
    assert "TraceError" in report.fx_error and "control flow" in report.fx_error
    assert "qat_int8" not in report.methods  # QAT needs FX
    assert "static_int8" in report.methods  # eager per-layer wrapping still works
    assert "NOT traceable" in report.table()


def test_recurrent_model_features(lstm_task):
    report = inspect(lstm_task.model, lstm_task.validation_data[0][0][:1])
    assert report.features["recurrent_share"] > 0.9
    assert report.features["conv_share"] == 0.0


def test_inspect_command(capsys):
    assert main(["inspect", "cnn"]) == 0
    out = capsys.readouterr().out
    assert "block2.0" in out and "compute %" in out and "torch.fx: traceable" in out

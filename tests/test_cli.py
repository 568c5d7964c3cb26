from autoquant.cli import main


def test_methods_prints_the_capability_table(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert "static_int8" in out and "histogram" in out and "qnnpack" in out
    assert "linear_prepack_fp16" in out


def test_demo_prints_the_measurement_table(capsys):
    assert main(["demo", "--model", "mlp"]) == 0
    out = capsys.readouterr().out
    for column in ("accuracy", "drop (pt)", "speedup", "size ratio"):
        assert column in out
    for label in ("float (fp32)", "quantize_dynamic Linear qint8", "static int8 x86 per-channel"):
        assert label in out
    assert "failed" not in out


def test_bad_model_name_is_a_usage_error(capsys):
    assert main(["demo", "--model", "vgg"]) == 2
    assert "'model' parameter must be one of" in capsys.readouterr().err

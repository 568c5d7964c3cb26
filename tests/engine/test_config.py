import pytest

from autoquant import ConfigError, QuantConfig
from autoquant.engine.config import CONFIG_VERSION


def test_json_round_trip_keeps_every_field():
    config = QuantConfig(
        method="qat_int8",
        backend="fbgemm",
        activation_observer="minmax",
        weight_observer="minmax",
        qscheme="symmetric",
        reduce_range=False,
        activation_dtype="qint8",
        weight_dtype="quint8",
        keep_float=("fc", "block1.*"),
        calibration_batches=3,
        qat_epochs=2,
        qat_lr=3e-4,
    )
    again = QuantConfig.from_json(config.to_json())
    assert again == config
    assert again.keep_float == ("fc", "block1.*")
    assert again.version == CONFIG_VERSION


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        QuantConfig().method = "fp32"


def test_keep_float_list_becomes_tuple():
    assert QuantConfig(keep_float=["fc"]).keep_float == ("fc",)


@pytest.mark.parametrize(
    ("field", "value", "must"),
    [
        ("method", "int3", "must be one of"),
        ("backend", "tpu", "must be one of ['x86', 'fbgemm', 'qnnpack', 'onednn']"),
        ("activation_observer", "entropy", "must be one of"),
        ("activation_dtype", "int8", "must be one of ['quint8', 'qint8']"),
        ("weight_dtype", "qint4", "must be one of ['quint8', 'qint8']"),
        ("weight_observer", "histogram", "must be one of"),
        ("qscheme", "asymmetric", "must be one of"),
        ("reduce_range", "yes", "must be a bool"),
        ("calibration_batches", -1, "must be an int >= 1"),
        ("calibration_batches", 2.5, "must be an int"),
        ("qat_epochs", 0, "must be an int >= 1"),
        ("qat_lr", 0.0, "must be a float in (0.0, 1.0]"),
        ("keep_float", "fc", "must be a list of non-empty module name patterns"),
    ],
)
def test_bad_field_names_field_rule_and_value(field, value, must):
    with pytest.raises(ConfigError) as err:
        QuantConfig(**{field: value})
    message = str(err.value)
    assert f"'{field}'" in message
    assert must in message
    assert repr(value) in message


def test_unknown_key_and_future_version_are_refused():
    with pytest.raises(ConfigError, match=r"Unknown QuantConfig field\(s\) \['bits'\]"):
        QuantConfig.from_dict({"method": "fp32", "bits": 4})
    with pytest.raises(ConfigError, match="upgrade autoquant"):
        QuantConfig.from_dict({"version": CONFIG_VERSION + 1})
    with pytest.raises(ConfigError, match="could not be parsed"):
        QuantConfig.from_json("{method: fp32")


def test_canonical_resets_what_the_method_ignores():
    a = QuantConfig(method="dynamic_int8", activation_observer="minmax", qat_epochs=3)
    b = QuantConfig(method="dynamic_int8", activation_observer="histogram")
    assert a != b
    assert a.canonical() == b.canonical()
    # a field the method uses is kept
    c = QuantConfig(method="dynamic_int8", weight_observer="minmax")
    assert c.canonical() != b.canonical()


def test_label_is_scannable():
    assert QuantConfig(method="static_int8", backend="x86").label() == "static_int8 x86 histogram"
    assert QuantConfig(method="fp32").label() == "fp32"
    # an int8 type off the default is named, for the methods that take it
    onnx = QuantConfig(method="ort_static_int8", activation_dtype="qint8", weight_dtype="quint8")
    assert onnx.label() == "ort_static_int8 histogram act:qint8 weight:quint8"
    assert QuantConfig(method="static_int8", activation_dtype="qint8").label() == (
        "static_int8 x86 histogram"  # torch's kernels take quint8 activations: not a choice
    )
    assert QuantConfig(method="dynamic_int8", keep_float=("fc",)).label() == (
        "dynamic_int8 x86 float:1"
    )

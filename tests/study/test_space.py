import optuna
import pytest

from autoquant import ConfigError
from autoquant.study.space import builtin_spaces, load_space, parse_space


def test_builtin_spaces_load_by_name():
    assert {"default", "cnn", "transformer", "mobile", "quick"} <= set(builtin_spaces())
    for name in builtin_spaces():
        space = load_space(name)
        assert space.name == name and space.methods
    assert load_space("mobile").backends == ("qnnpack",)
    assert load_space("default").layer_mode == "ranked"
    assert load_space("transformer").layer_mode == "per_layer"


def test_space_file_by_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("methods: [dynamic_int8]\nbackends: [fbgemm]\n")
    space = load_space(str(path))
    assert space.name == "mine" and space.methods == ("dynamic_int8",)


@pytest.mark.parametrize(
    ("text", "key", "got"),
    [
        ("methods: [int4]", "'methods'", "['int4']"),
        ("methods: []", "'methods'", "[]"),
        ("methods: [fp32]\nbackends: [tpu]", "'backends'", "['tpu']"),
        ("methods: [fp32]\ncalibration_batches: [0]", "'calibration_batches'", "[0]"),
        ("methods: [fp32]\nlayers: {mode: some}", "'layers.mode'", "'some'"),
        ("methods: [fp32]\nlayers: {mode: ranked, max_float: -1}", "'layers.max_float'", "-1"),
        ("methods: [fp32]\nqat: {lr: [0.1, 0.01]}", "'qat.lr'", "[0.1, 0.01]"),
        ("methods: [fp32]\nreduce_range: [maybe]", "'reduce_range'", "['maybe']"),
        ("methods: [dynamic_fp16]\nbackends: [qnnpack]", "'backends'", "['qnnpack']"),
    ],
)
def test_bad_file_names_file_key_rule_and_value(text, key, got):
    with pytest.raises(ConfigError) as err:
        parse_space(text, source="spaces/bad.yaml")
    message = str(err.value)
    assert message.startswith("spaces/bad.yaml: the key " + key)
    assert "must be" in message and f"Got {got} instead" in message


def test_unknown_keys_and_bad_yaml():
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown key\(s\) \['observers'\]"):
        parse_space("methods: [fp32]\nobservers: [minmax]", source="bad.yaml")
    with pytest.raises(ConfigError, match=r"under 'layers'"):
        parse_space("methods: [fp32]\nlayers: {mode: none, k: 2}", source="bad.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_space("methods: [fp32", source="bad.yaml")
    with pytest.raises(ConfigError, match="built-in space"):
        load_space("nonexistent")


def test_yaml_is_parsed_safely():
    # A python tag would construct an object with the unsafe loader; the safe one refuses it.
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_space("methods: !!python/object/apply:os.system ['true']", source="evil.yaml")


def sample(space, n, layers=("a", "b", "c"), sensitive=("c", "a", "b"), seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    configs, params = [], []
    for _ in range(n):
        trial = study.ask()
        configs.append(space.suggest(trial, list(layers), list(sensitive)))
        params.append(dict(trial.params))
        study.tell(trial, 0.0)
    return configs, params


def test_conditional_dimensions():
    configs, params = sample(load_space("default"), 60)
    for config, p in zip(configs, params, strict=True):
        if config.method == "fp32":
            assert set(p) == {"method", "compile"}  # float chooses only whether to compile
        if config.method != "fp32":
            assert "compile" not in p  # torch.ao cannot compile; torchao always does
        if config.method in ("dynamic_int8", "dynamic_fp16"):
            assert "activation_observer" not in p and "qscheme" not in p
        if config.method == "dynamic_fp16":
            assert config.backend in ("x86", "fbgemm")  # never a backend it cannot run on
        if config.method in ("static_int8", "qat_int8"):
            assert "activation_observer" in p
            if config.backend == "onednn":
                assert config.qscheme == "symmetric" and "qscheme" not in p
        if config.method != "qat_int8":
            assert "qat_lr" not in p and "qat_epochs" not in p
    assert {c.method for c in configs} == set(load_space("default").methods)


def test_the_int8_types_are_searched_only_where_a_method_takes_them():
    pytest.importorskip("onnxruntime")
    space = parse_space(
        "methods: [static_int8, ort_static_int8, ort_dynamic_int8]\n"
        "activation_dtypes: [quint8, qint8]\nweight_dtypes: [qint8, quint8]\n"
    )
    assert space.activation_dtypes == ("quint8", "qint8")
    assert space.weight_dtypes == ("qint8", "quint8")
    configs, params = sample(space, 40)
    taken = {"static_int8": set(), "ort_static_int8": {"activation_dtype", "weight_dtype"}}
    taken["ort_dynamic_int8"] = {"weight_dtype"}
    for config, p in zip(configs, params, strict=True):
        assert {"activation_dtype", "weight_dtype"} & set(p) == taken[config.method]
        if config.method == "static_int8":
            assert (config.activation_dtype, config.weight_dtype) == ("quint8", "qint8")
    picked = {
        (c.activation_dtype, c.weight_dtype) for c in configs if c.method == "ort_static_int8"
    }
    assert len(picked) == 4  # every pair was tried
    with pytest.raises(ConfigError, match=r"the key 'weight_dtypes' must be a non-empty list"):
        parse_space("methods: [fp32]\nweight_dtypes: [int4]", source="bad.yaml")


def test_ranked_mode_keeps_the_k_most_sensitive_layers():
    configs, params = sample(load_space("default"), 40)
    for config, p in zip(configs, params, strict=True):
        if "float_layers" in p:
            assert config.keep_float == ("c", "a", "b")[: p["float_layers"]]
            assert 0 <= p["float_layers"] <= 3


def test_per_layer_mode_chooses_each_layer():
    configs, params = sample(load_space("transformer"), 30)
    chosen = [c for c, p in zip(configs, params, strict=True) if "float[a]" in p]
    assert chosen
    for config in chosen:
        assert set(config.keep_float) <= {"a", "b", "c"}
    assert len({c.keep_float for c in chosen}) > 1


def test_quick_space_has_no_layer_choice():
    configs, _ = sample(load_space("quick"), 10)
    assert all(c.keep_float == () for c in configs)

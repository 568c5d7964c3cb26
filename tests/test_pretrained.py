"""Real pretrained models no one here trained (weights inside pip packages): a transformers
sentence encoder fed with its tokenizer's dict batches, returning a ModelOutput."""

import pytest
import torch

from autoquant import QuantConfig
from autoquant.measure import score_and_answers
from experiments.pretrained import minilm_task


@pytest.fixture(scope="module")
def minilm():
    return minilm_task()


def test_minilm_is_a_real_encoder_with_dict_batches(minilm):
    batch = minilm.validation_data[0]
    assert set(batch) >= {"input_ids", "attention_mask"} and batch["input_ids"].shape[1] == 48
    assert sum(p.numel() for p in minilm.model.parameters()) == 22_713_216
    assert minilm.label_free and minilm.metric.name == "cosine"
    value, _ = score_and_answers(minilm.model, minilm.validation_data, minilm)
    assert value == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["dynamic_int8", "pt2e_static_int8"])
def test_minilm_quantizes_and_keeps_its_hidden_states(minilm, method):
    # pt2e_static_int8 failed with IndexError inside X86InductorQuantizer on this encoder
    # (its unused pooler) before dead code was removed from the exported graph.
    quantized = minilm.build(QuantConfig(method=method, calibration_batches=2))
    encoder = [name for name in quantized.layer_map if name.startswith("encoder.")]
    assert len(encoder) == 36 and set(encoder) <= set(quantized.quantized_layers)
    data = minilm.validation_data[:2]
    value, _ = score_and_answers(quantized, data, minilm)
    assert 0.95 < value < 1.0
    outputs = quantized(**{k: v[:2] for k, v in data[0].items()})
    assert outputs.last_hidden_state.shape == (2, 48, 384)
    assert torch.isfinite(outputs.last_hidden_state).all()

"""Pruning on the validation subset: only when the subset resolves the drop."""

import torch

from autoquant.engine.budget import Budget
from autoquant.measure.scoring import predicted_answers
from autoquant.measure.uncertainty import answers_interval
from autoquant.study.trial import prune_reason


def _subset_answers(mlp_task, examples, changed):
    """Float's answers on the first ``examples`` validation digits (all right), and a
    candidate's that give ``changed`` of them another class."""
    inputs, targets = mlp_task.validation_data[0]
    with torch.no_grad():
        outputs = mlp_task.model(inputs)
    right = outputs.argmax(dim=1) == targets
    outputs, targets = outputs[right][:examples], targets[right][:examples]
    candidate = outputs.clone()
    candidate[:changed] = outputs[:changed].roll(1, dims=1)  # another class on top
    assert (candidate.argmax(dim=1) != outputs.argmax(dim=1)).sum() == changed
    return predicted_answers(candidate, targets), predicted_answers(outputs, targets)


def _verdict(mlp_task, examples, changed, budget="1pt"):
    answers, float_answers = _subset_answers(mlp_task, examples, changed)
    drop = 100 * changed / examples
    interval = answers_interval(answers, float_answers, mlp_task.metric)
    return prune_reason(drop, interval, Budget.parse(budget), 1.0, bounded=True)


def test_one_changed_answer_of_a_tiny_subset_is_not_enough_to_prune(mlp_task):
    # 1 of 15 is 6.67 points, beyond the pruning limit of 6 at a 1pt budget; its interval
    # reaches below 0: the subset cannot tell, so the trial is measured in full
    assert _verdict(mlp_task, 15, 1) is None


def test_a_resolved_drop_is_pruned_and_the_reason_says_both(mlp_task):
    reason = _verdict(mlp_task, 15, 13)  # an outlier model's 85-point drop
    assert reason.startswith("drop 86.67 on a quarter of the validation data, beyond the")
    assert "pruning limit 6.00 (budget 1pt), and the lower bound of its 95 % interval" in reason
    assert "on 15 examples, also beyond the budget" in reason
    # on 60 examples 6 changed answers (10 points) are resolved: the lower bound is past 1pt
    assert _verdict(mlp_task, 60, 6) is not None
    # a relative budget converts the bound into percent of float's score
    assert "%" in _verdict(mlp_task, 15, 13, budget="1%")


def test_a_drop_within_the_limit_is_never_pruned(mlp_task):
    assert _verdict(mlp_task, 60, 3) is None  # 5 points: within max(3 x 1, 1 + 5)
    # without an interval (another order, or no per-example scores) the limit alone decides
    assert prune_reason(7.0, None, Budget(1.0), 1.0, bounded=True).startswith("drop 7.00")
    assert prune_reason(5.0, None, Budget(1.0), 1.0, bounded=True) is None

import torch

from autoquant.tasks.digits import SPLIT_SHARES, digits_splits


def test_split_is_fixed_stratified_and_disjoint():
    splits = digits_splits()
    total = sum(len(s.targets) for s in splits.values())
    assert total == 1797
    for name, share in SPLIT_SHARES.items():
        assert abs(len(splits[name].targets) / total - share) < 0.01
        counts = torch.bincount(splits[name].targets, minlength=10)
        assert counts.min() > 0.8 * counts.max()  # every class, in about equal numbers
    rows = [tuple(x.flatten().tolist()) for s in splits.values() for x in s.inputs]
    assert splits["train"].inputs.shape[1:] == (1, 8, 8)
    assert 0.0 <= splits["train"].inputs.min() and splits["train"].inputs.max() <= 1.0
    # the same split every time
    digits_splits.cache_clear()
    assert torch.equal(digits_splits()["test"].targets, splits["test"].targets)
    assert len(rows) == total

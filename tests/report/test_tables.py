"""The final-round table keeps its columns when a finalist fails; the reason is listed below."""

from types import SimpleNamespace

from autoquant import QuantConfig
from autoquant.recommend.recommendation import Finalist
from autoquant.report.tables import (
    METRIC_COLUMNS,
    finalist_failures,
    finalist_rows,
    format_table,
)


def test_a_failed_finalist_is_marked_in_the_table_and_explained_below_it():
    error = "RuntimeError: torch.compile changed what GraphModule computes: " + "x" * 200
    rec = SimpleNamespace(
        finalists=[Finalist("trial 3: pt2e_static_int8 x86", QuantConfig("pt2e_static_int8"))]
    )
    rec.finalists[0].error = error
    table = format_table(finalist_rows(rec), METRIC_COLUMNS)
    assert "failed (below)" in table and "GraphModule" not in table
    assert max(len(line) for line in table.splitlines()) < 150
    assert finalist_failures(rec) == [f"trial 3: pt2e_static_int8 x86: {error}"]

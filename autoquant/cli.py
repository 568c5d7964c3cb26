"""The ``autoquant`` command: one verb per job, each parsing its flags and calling the library."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INFEASIBLE = 3


def _add_task_options(parser: argparse.ArgumentParser) -> None:
    from autoquant.evaluate import SCENARIOS
    from autoquant.tasks import TASKS, zoo_models

    parser.add_argument("--task", default="digits", choices=list(TASKS), help="built-in task")
    parser.add_argument(
        "--model", default="resnet18", help=f"zoo model ({', '.join(zoo_models())})"
    )
    parser.add_argument(
        "--scenario", default="bs1-t1", choices=list(SCENARIOS), help="batch size and threads"
    )


def cmd_demo(args: argparse.Namespace) -> int:
    """Quantize the default zoo model with the fixed configs and print the measurements."""
    from autoquant.evaluate import get_scenario
    from autoquant.recipes import DEMO_CONFIGS, measure_configs
    from autoquant.report import METRIC_COLUMNS, format_table, metrics_row
    from autoquant.tasks import get_task

    task = get_task(args.task, args.model)
    scenario = get_scenario(args.scenario)
    print(
        f"{args.task} / {args.model}, scenario {scenario.name}: measuring {len(DEMO_CONFIGS)} "
        f"fixed configurations on the validation split"
    )
    rows = []

    def show(outcome):
        print(f"  {outcome.label}: " + ("done" if outcome.metrics else outcome.error))
        rows.append(
            metrics_row(outcome.label, outcome.metrics)
            if outcome.metrics
            else {"candidate": outcome.label, "accuracy": "failed"}
        )

    measure_configs(task, DEMO_CONFIGS, scenario, on_done=show)
    print()
    print(format_table(rows, METRIC_COLUMNS))
    return EXIT_OK


def cmd_methods(args: argparse.Namespace) -> int:
    """Print the methods, observers, backends and the capability table."""
    from autoquant.backends import BACKENDS
    from autoquant.methods import available_methods, capabilities, get_method
    from autoquant.observers import ACTIVATION_OBSERVERS, WEIGHT_OBSERVERS
    from autoquant.report import format_table

    print(
        format_table(
            [{"method": m, "what it does": get_method(m).summary} for m in available_methods()],
            ["method", "what it does"],
        )
    )
    print()
    print(format_table([{"backend": b, "for": d} for b, d in BACKENDS.items()], ["backend", "for"]))
    print()
    print("activation observers:", ", ".join(ACTIVATION_OBSERVERS))
    print("weight observers:", ", ".join(WEIGHT_OBSERVERS))
    print()
    rows = [
        {**row, "supported": "yes" if row["supported"] else "no"}
        for row in capabilities()
        if row["method"] != "fp32"
    ]
    print(format_table(rows, ["method", "backend", "supported", "note"]))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoquant",
        description="Find the fastest or smallest quantized PyTorch model within an "
        "accuracy-drop budget.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND")
    verbs.required = True

    demo = verbs.add_parser("demo", help=cmd_demo.__doc__, description=cmd_demo.__doc__)
    _add_task_options(demo)
    demo.set_defaults(run=cmd_demo)

    methods = verbs.add_parser("methods", help=cmd_methods.__doc__, description=cmd_methods.__doc__)
    methods.set_defaults(run=cmd_methods)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import autoquant  # noqa: F401 - silences torch.ao's deprecation noise before any work
    from autoquant.errors import AutoQuantError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except AutoQuantError as err:
        print(f"autoquant: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("autoquant: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

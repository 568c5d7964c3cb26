"""The search: its settings (``options``: ``SearchOptions``), an Optuna study over a
declarative space (``space``, the only place trials are suggested), one trial's evaluation
(``trial``), the study's run and its warm start, repair ladder and local steps (``run``,
``repair``, ``explore``, ``history``), per-layer sensitivity (``sensitivity``) and the YAML
experiment (``experiment``).

May import every layer below it (engine, tasks, measure, report, tracking, recommend); only
the CLI and the public API import it.
"""

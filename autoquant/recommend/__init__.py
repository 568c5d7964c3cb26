"""Recommending: the expert rules' candidates (``prior``), the plain recipes (``recipes``), and
the Recommendation made from a study's trials after a final round timed head to head
(``recommendation``), which ``Recommendation.save`` writes to a folder.

May import the engine, tasks, ``measure``, ``report`` and ``tracking``; not the study that
calls it.
"""

"""Reports: tables (plain text and Markdown), the Markdown report of a recommendation, plots.

Formatting only: it reads the objects it is given by their attributes and imports nothing of
autoquant, so every layer above may use it.
"""

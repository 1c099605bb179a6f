"""The studies the book runs: one package per chapter (``experiment.py``: cached computations and
the run plan; ``report.py``: claims, verdicts, page tables; ``jobs.py``: the sweep built from the
same plan). Studies import methods; methods never import studies."""

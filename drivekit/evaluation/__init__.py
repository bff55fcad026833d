"""Layer 4, scoring answers: ``metrics`` (accuracy, F1s), ``stats`` (spread over seeds, paired tests),
``reports`` (prediction rows, F1 reports, comparison tables), ``plots`` (the figures).
"""

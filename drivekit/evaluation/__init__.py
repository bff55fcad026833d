"""Layer 4, scoring answers: ``metrics`` (accuracy, F1s), ``stats`` (spread over seeds, paired tests),
``reports`` (prediction rows, F1 reports, comparison tables), ``plots`` (the figures), ``quotes`` (the numbers
README, RESULTS and the notebooks quote, each checked against the one value of a results file it is bound to).
"""

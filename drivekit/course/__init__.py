"""Layer 9, the course beside the experiment: ``widgets`` (the notebooks' explorers and panel),
``exercises`` (self-checks; solutions in ``notebooks/solutions/``), ``reproduce`` (run the notebooks).
"""

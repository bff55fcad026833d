"""Layer 1, labels and configuration: ``taxonomy`` (actions, reasons, their order), ``config`` (tiny and paper
profiles, presets, the settings pattern), ``tracking`` (trackio or TensorBoard for every training loop),
``files`` (atomic writes and reads that name the file), ``settings`` (the one settings pattern),
``provenance`` (commit and clean tree of a results file).
"""

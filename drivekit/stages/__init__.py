"""Layer 8, stages: what one notebook runs end to end. ``runs`` (a stage's run directory, ``ensure``),
``sft_stage``, ``a2c_stage``, ``grpo_stage``, ``self_training``, ``json_stage``.
"""

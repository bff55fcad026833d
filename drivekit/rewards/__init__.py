"""Layer 6, rewards, each a plain callable ``reward(completions, **batch) -> list[float]``:
``clip_reward`` (R1), ``action_reward`` (R2 variants), ``structure_reward`` (R3), ``weighted_reward``
(R = w1·R1 + w2·R2 + w3·R3, one object for A2C and GRPO).
"""

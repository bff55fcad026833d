"""drivekit: helpers for the interpretable-driving VLM course (SFT with QLoRA, CLIP reward, A2C).

Layers import downwards only (``tests/test_layers.py`` checks every import, deferred ones too):

1. labels & config   ``taxonomy`` (actions, reasons, their order) · ``config`` (tiny / paper profiles,
                     ``profile_defaults`` of every settings class) · ``tracking`` (the
                     ``DRIVEKIT_REPORT_TO`` switch: trackio or TensorBoard for every training loop)
2. data              ``bddoia`` (official-layout reader, torch dataset) · ``check_data`` (a copy on
                     disk checked and reported, ``check-data``) · ``scene`` (scene graph, rule
                     table, descriptions) · ``render`` (frames of a scene) · ``synthetic`` (the dataset
                     writer) · ``toy_split`` (the proposal's split, as datasets)
3. text formats      ``formats`` (plain target and parser, completion text) · ``json_output`` (schema,
                     JSON targets, parser, structure score) · ``metrics`` · ``stats`` (spread over
                     seeds, paired clip-by-clip tests) · ``evaluation`` (prediction rows, F1 reports,
                     comparison tables) · ``plots``
4. models            ``prompts`` (images-only chat prompts) · ``models`` (VLM loading, QLoRA, adapters)
                     · ``zoo`` (the tiny VLM) · ``perception`` (its descriptions read back element by
                     element) · ``smolvlm`` (SmolVLM's published configs, random-init
                     stand-ins) · ``constrained`` (grammar-constrained decoding) ·
                     ``clip`` (CLIP loading and training) · ``clip_eval`` (CLIP retrieval checks)
5. rewards           ``clip_reward`` (R1) · ``action_reward`` (R2 variants) · ``structure_reward`` (R3)
                     · ``weighted_reward`` (R = w1·R1 + w2·R2 + w3·R3, one object for A2C and GRPO;
                     ``RewardSettings``)
6. algorithms        ``sft`` (the QLoRA SFT loop) · ``a2c`` (A2C in one file: rollout, per-token
                     rewards, value head, returns, losses, trainer, checkpoints) · ``grpo`` (GRPO
                     through trl) · ``checkpoints`` (numbered checkpoint folders, SFT's and A2C's)
7. stages            ``runs`` (a stage's run directory, ``ensure``) · ``sft_stage`` · ``a2c_stage`` ·
                     ``grpo_stage`` · ``self_training`` (SFT on its own answers, label-free RL's
                     baseline) · ``json_stage`` · ``widgets`` · ``exercises`` (the notebooks'
                     self-checks; solutions in ``notebooks/solutions/``) · ``experiment`` (RL
                     against SFT over seeds)
8. entry points      ``__main__`` (``python -m drivekit``) · ``reproduce`` (run the notebooks)

Notebooks: 00 ``bddoia``, ``scene``, ``synthetic``, ``plots`` · 01 ``toy_split`` · 02 ``sft``,
``sft_stage``, ``models``, ``prompts``, ``perception`` · 03 ``clip``, ``clip_eval``, ``clip_reward`` ·
04 ``a2c``, ``a2c_stage``, ``action_reward``, ``weighted_reward``, ``experiment``, ``widgets`` ·
05 ``json_stage``, ``json_output``, ``structure_reward`` · 06 ``evaluation``, ``metrics``, ``stats``,
``plots``.
"""

__version__ = "0.1.0"

# The layer of every module (plain data; the test above reads it). A module may import modules of
# its own layer or of lower ones, never of a higher one, and the imports may not form a cycle.
LAYERS = {
    "taxonomy": 1, "config": 1, "tracking": 1,
    "bddoia": 2, "check_data": 2, "scene": 2, "render": 2, "synthetic": 2, "toy_split": 2,
    "formats": 3, "json_output": 3, "metrics": 3, "stats": 3, "evaluation": 3, "plots": 3,
    "prompts": 4, "models": 4, "perception": 4, "zoo": 4, "smolvlm": 4, "constrained": 4, "clip": 4, "clip_eval": 4,
    "clip_reward": 5, "action_reward": 5, "structure_reward": 5, "weighted_reward": 5,
    "sft": 6, "a2c": 6, "grpo": 6, "checkpoints": 6,
    "runs": 7, "sft_stage": 7, "self_training": 7, "a2c_stage": 7, "grpo_stage": 7, "json_stage": 7, "widgets": 7, "exercises": 7,
    "experiment": 7,
    "__main__": 8, "reproduce": 8,
}

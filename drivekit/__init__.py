"""drivekit: helpers for the interpretable-driving VLM course (SFT with QLoRA, CLIP reward, A2C).

One folder per layer; a folder imports only from its own layer or lower ones, and nothing forms a
cycle (``tests/test_layers.py`` checks every import, deferred ones too). Each folder's ``__init__``
says what its modules hold.

1. ``core/``        labels and configuration: taxonomy, config (profiles, presets, settings), tracking,
                    files (atomic writes, reads that name the file)
2. ``data/``        BDD-OIA reader, data checks, scene graph, renderer, synthetic writer, toy split
3. ``text/``        the plain and JSON answer formats: targets, parsers, the schema, the structure score
4. ``evaluation/``  metrics, paired statistics, prediction reports, plots
5. ``models/``      prompts, VLM loading and QLoRA, the tiny zoo, perception checks, SmolVLM configs,
                    constrained decoding, CLIP
6. ``rewards/``     R1 (CLIP), R2 (action-reasoning variants), R3 (structure), their weighted sum
7. ``algorithms/``  SFT, A2C (one file, top to bottom), GRPO through trl, checkpoints
8. ``stages/``      what a notebook runs end to end: run directories, SFT, A2C, GRPO, self-training, JSON
9. ``experiment/``  RL against SFT over seeds (settings, runs, tuning on validation, results, export, CLI)
   ``course/``      the notebooks' widgets, exercises and runner, beside the experiment
10. ``__main__``    ``python -m drivekit``

Notebooks: 00 ``data.bddoia``, ``data.scene``, ``data.synthetic``, ``evaluation.plots`` · 01 ``data.toy_split`` ·
02 ``algorithms.sft``, ``stages.sft_stage``, ``models.vlm``, ``models.prompts``, ``models.perception`` ·
03 ``models.clip``, ``models.clip_eval``, ``rewards.clip_reward`` · 04 ``algorithms.a2c``,
``stages.a2c_stage``, ``rewards.action_reward``, ``rewards.weighted_reward``, ``experiment``,
``course.widgets`` · 05 ``stages.json_stage``, ``text.json_output``, ``rewards.structure_reward`` ·
06 ``evaluation.reports``, ``evaluation.metrics``, ``evaluation.stats``, ``evaluation.plots``.
"""

import logging

__version__ = "0.1.0"


class _NoKernelsNotice(logging.Filter):
    """Drop bitsandbytes' "Failed to load CPU gemm_4bit_forward from kernels-community: No module named
    'kernels'" warning, which it prints on every import on a CPU with AVX512-BF16 when the optional
    ``kernels`` package is missing: it then uses its own CPU code, which is what drivekit trains with.
    Installed here, before any drivekit module can import peft (which imports bitsandbytes)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to load CPU gemm_4bit_forward from kernels-community")


logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_NoKernelsNotice())

# The layer of every folder (plain data; tests/test_layers.py reads it). A module may import modules of
# its own folder, of another folder of the same layer, or of lower layers, never of a higher one, and
# the imports may not form a cycle.
LAYERS = {
    "core": 1, "data": 2, "text": 3, "evaluation": 4, "models": 5, "rewards": 6, "algorithms": 7,
    "stages": 8, "experiment": 9, "course": 9, "__main__": 10,
}

"""Library notices that teach nothing, kept out of the notebooks' cells.

transformers 5.24 warns, from its own code paths, about names it deprecates internally: peft reads
``model.is_gradient_checkpointing`` (a ``FutureWarning``), and a forward given ``past_key_values`` (drivekit's
KV-cached rollout, :mod:`drivekit.algorithms.a2c`) warns once as a ``FutureWarning`` and once on the
``transformers.utils.generic`` logger. In JupyterLab each shows as a red box in whatever cell trains next, the
training panel's output included, after every click. :func:`quiet` drops exactly these (matched by their
text); every other warning still shows. ``import drivekit.course`` calls it, so every notebook that uses the
course's widgets or exercises has it from its imports cell on.
"""
from __future__ import annotations

import logging
import warnings

# (category, start of the message) of each FutureWarning dropped
WARNINGS = (
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
    (FutureWarning, r"`past_key_values` is deprecated"),
)
# (logger, start of the message) of each logged notice dropped
LOGGED = (("transformers.utils.generic", "`past_key_values`/`cache_params` are deprecated"),)


class _Drop(logging.Filter):
    def __init__(self, start: str):
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.start)


def quiet() -> None:
    """Drop the notices of :data:`WARNINGS` and :data:`LOGGED`, once per process (calling it again adds nothing)."""
    for category, start in WARNINGS:
        warnings.filterwarnings("ignore", message=start, category=category)
    for name, start in LOGGED:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) and f.start == start for f in logger.filters):
            logger.addFilter(_Drop(start))

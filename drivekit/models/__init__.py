"""Layer 5, models: ``prompts`` (images-only chat prompts), ``vlm`` (VLM loading per profile, QLoRA,
adapters), ``zoo`` (the tiny VLM), ``perception`` (its descriptions read back), ``smolvlm`` (SmolVLM's
published configs, random-init stand-ins), ``constrained`` (grammar-constrained decoding), ``clip`` (CLIP
loading and training), ``clip_eval`` (CLIP retrieval checks).
"""

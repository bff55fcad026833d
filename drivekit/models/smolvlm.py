"""SmolVLM's published configurations, and random-initialised stand-ins built from them.

No project machine can download weights, so the paper profile is rehearsed with models of the
real architecture at random init, saved like a downloaded model and chosen with ``$DRIVEKIT_VLM``.

- :data:`ARCHITECTURES` holds the ``config.json`` values of ``HuggingFaceTB/SmolVLM-256M-Instruct``
  (SigLIP-base/16 at 512 px, pixel shuffle 4, SmolLM2-135M; 256.5 M parameters) and
  ``HuggingFaceTB/SmolVLM-Instruct`` (SigLIP-so400m/14 at 384 px, pixel shuffle 3, SmolLM2-1.7B;
  2.25 B), and :data:`PROCESSORS` their image processors' settings: a frame is resized to a longest
  edge of 2048 / 1536 px, then cut into 512 / 384 px tiles (plus one whole-frame tile), each tile
  64 / 81 image tokens. A 1280x720 frame is 13 tiles.
- :func:`stand_in` writes such a model with its processor. The tokenizer is drivekit's (trained on
  the synthetic texts, as the tiny model's): its ids differ from SmolVLM's, but the embedding and
  LM-head matrices keep the real vocabulary size, so memory and compute are the real model's.
  ``shrink`` replaces sizes for a toy of the same layout (tests); :func:`parameter_count` counts
  parameters without allocating them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor, Idefics3Processor

from drivekit.models import prompts
from drivekit.models.zoo import CHAT_TEMPLATE, corpus, train_tokenizer

MODEL_IDS = {"256m": "HuggingFaceTB/SmolVLM-256M-Instruct", "instruct": "HuggingFaceTB/SmolVLM-Instruct"}

# config.json of each model (the values that set sizes); the rest are Idefics3Config's defaults.
ARCHITECTURES: dict[str, dict] = {
    "256m": dict(
        vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                    image_size=512, patch_size=16),
        text=dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                  num_key_value_heads=3, vocab_size=49280, max_position_embeddings=8192, rms_norm_eps=1e-5,
                  rope_theta=100000.0),
        scale_factor=4,
    ),
    "instruct": dict(
        vision=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                    image_size=384, patch_size=14),
        text=dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24, num_attention_heads=32,
                  num_key_value_heads=32, vocab_size=49155, max_position_embeddings=16384, rms_norm_eps=1e-5,
                  rope_theta=273768.0),
        scale_factor=3,
    ),
}

# preprocessor_config.json / processor_config.json of each model.
PROCESSORS: dict[str, dict] = {
    "256m": dict(longest_edge=2048, tile=512, image_seq_len=64),
    "instruct": dict(longest_edge=1536, tile=384, image_seq_len=81),
}


def _known(name: str) -> str:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown SmolVLM {name!r}; choose one of {sorted(ARCHITECTURES)}")
    return name


def tokenizer(texts: Sequence[str] = (), vocab_size: int = 1024, max_length: int = 8192):
    """drivekit's byte-level BPE tokenizer with SmolVLM's special tokens, trained on ``texts``
    (scene descriptions; the label and chat texts are always added)."""
    tok = train_tokenizer(corpus(list(texts)), vocab_size)
    tok.model_max_length = max_length
    return tok


def processor(name: str, tok) -> Idefics3Processor:
    """The image processor settings of model ``name`` (:data:`PROCESSORS`) with tokenizer ``tok``."""
    p = PROCESSORS[_known(name)]
    images = Idefics3ImageProcessor(
        do_resize=True, size={"longest_edge": p["longest_edge"]}, max_image_size={"longest_edge": p["tile"]},
        do_image_splitting=True, resample=1, image_mean=[0.5] * 3, image_std=[0.5] * 3)  # 1: Lanczos, as published
    return Idefics3Processor(image_processor=images, tokenizer=tok, image_seq_len=p["image_seq_len"],
                             chat_template=CHAT_TEMPLATE)


def config(name: str, tok, shrink: Mapping[str, Mapping] | None = None) -> Idefics3Config:
    """The Idefics3 config of model ``name``, ids from ``tok``; ``shrink`` (``{"vision": {...},
    "text": {...}}``) replaces sizes. The vocabulary stays the published one unless ``shrink``
    sets ``text.vocab_size`` (None: the tokenizer's)."""
    arch = ARCHITECTURES[_known(name)]
    shrink = shrink or {}
    vision = {**arch["vision"], **shrink.get("vision", {})}
    text = {**arch["text"], **shrink.get("text", {})}
    text["vocab_size"] = text["vocab_size"] or len(tok)
    ids = dict(pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    return Idefics3Config(
        vision_config=vision, text_config=dict(model_type="llama", tie_word_embeddings=False, **text, **ids),
        scale_factor=arch["scale_factor"], image_token_id=tok.convert_tokens_to_ids("<image>"),
        tie_word_embeddings=False, pad_token_id=tok.pad_token_id)


def parameter_count(cfg: Idefics3Config) -> dict[str, int]:
    """Parameters of a model of ``cfg`` by part (vision, connector, text decoder, LM head, total),
    counted on the meta device (nothing allocated)."""
    with torch.device("meta"):
        model = Idefics3ForConditionalGeneration(cfg)
    parts = dict(vision=model.model.vision_model, connector=model.model.connector, text=model.model.text_model,
                 lm_head=model.lm_head)
    counts = {part: sum(p.numel() for p in module.parameters()) for part, module in parts.items()}
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def stand_in(name: str, out: str | Path, texts: Sequence[str] = (), shrink: Mapping[str, Mapping] | None = None,
             seed: int = 0, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> Path:
    """Write a random-initialised model of ``name``'s architecture and its processor to ``out``
    (``save_pretrained`` layout, loadable by ``drivekit.models.vlm.load_vlm`` and ``$DRIVEKIT_VLM``).
    The weights are drawn on ``device`` (a GPU draws SmolVLM-Instruct's 2.25 B in seconds) and
    saved as ``dtype`` (bf16 halves the files; loading casts them to the compute dtype)."""
    out = Path(out)
    tok = tokenizer(texts, max_length=ARCHITECTURES[_known(name)]["text"]["max_position_embeddings"])
    proc = processor(name, tok)
    torch.manual_seed(seed)
    with torch.device(device):
        model = Idefics3ForConditionalGeneration(config(name, tok, shrink)).to(dtype)
    model.generation_config.eos_token_id = prompts.end_of_utterance_id(proc)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    proc.save_pretrained(out)
    return out

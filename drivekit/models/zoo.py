"""The tiny model zoo: a SmolVLM-architecture (Idefics3) VLM that drivekit builds and pretrains itself.

SmolVLM-Instruct's weights cannot be downloaded on the project's machines, so the tiny profile
fine-tunes a model of the same architecture that drivekit makes from the synthetic clips:

1. a byte-level BPE tokenizer trained with ``tokenizers`` on the synthetic corpus (scene
   descriptions, Stage-2 target texts, JSON punctuation, the chat template's words), with the
   Idefics3 special tokens and SmolVLM's chat template;
2. an ``Idefics3Processor`` for the 96x96 px frames: one image = 6x6 patches of 16 px, pixel
   shuffle by 2 -> 9 image tokens, no image splitting;
3. an ``Idefics3Config`` sized for a CPU (a 2-layer vision encoder, a 4-layer decoder);
4. pretraining: frames in, scene description out, no task text, on every synthetic clip except
   the toy test split (whose descriptions are held out: ``drivekit.models.perception`` reads the model's
   descriptions of them back element by element, and ``build.json`` records the scores).

The recipe is plain data (``TinySpec``, ``PretrainSettings``); ``build-vlm --spec KEY=VALUE
--set KEY=VALUE`` changes single fields.

The result is saved with ``save_pretrained`` (safetensors) to ``data/zoo/tiny-smolvlm`` and loaded
by ``drivekit.models.vlm.load_vlm("tiny")`` like any model directory. Build it with
``python -m drivekit build-vlm`` (or ``python -m drivekit.models.zoo``); deterministic for a seed and a
thread count.

Why this recipe (benchmarks/RESULTS.md, "Tiny VLM perception"): what the model must learn last is
the lead car's motion, whether it shrinks or grows across the 4 frames. Screened on a GPU at equal
CPU cost, 16-px patches learn it within 6.5 epochs where 12-px patches need 12 (at 5-5.5 epochs
the lead car is right in only 0.53-0.85 of clips). With 16-px patches and 2 vision layers, a step
of 16 clips costs about 0.27 of the old recipe's step of 32 clips, so 8 epochs at batch 16 (2,747
steps) fit the 30-minute budget on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessor,
    Idefics3Processor,
    PreTrainedTokenizerFast,
)

from drivekit.models import perception, prompts
from drivekit.data.bddoia import frame_paths, load_image
from drivekit.core.config import HOME, Config, dataclass_overrides, load
from drivekit.core.settings import Settings
from drivekit.text.formats import target_text
from drivekit.data.synthetic import ensure_dataset, read_scenes
from drivekit.core.taxonomy import ACTION_PHRASES, N_ACTIONS, N_REASONS, REASON_PHRASES
from drivekit.data.toy_split import load_or_make_toy_split

ZOO_DIR = HOME / "data" / "zoo"
TINY_NAME = "tiny-smolvlm"
BUILD_INFO = "build.json"

# The special tokens of SmolVLM's tokenizer that the Idefics3 processor and chat template use.
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>",
    "<fake_token_around_image>", "<image>", prompts.END_OF_UTTERANCE, "<global-img>",
    *(f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)),
]
# SmolVLM-Instruct's chat template, verbatim.
CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


@dataclass(frozen=True)
class TinySpec:
    """Sizes of the tiny model (plain data). bitsandbytes' CPU 4-bit kernels need every linear
    layer's input size to be a multiple of 64: keep the hidden sizes so."""

    vocab_size: int = 1024  # an upper bound: the synthetic corpus saturates well below it
    frame_size: int = 96
    patch_size: int = 16
    scale_factor: int = 2  # pixel shuffle: (96 / 16)^2 / 2^2 = 9 image tokens per frame
    vision_hidden: int = 128
    vision_layers: int = 2
    vision_heads: int = 4
    text_hidden: int = 192
    text_layers: int = 4
    text_heads: int = 6
    text_kv_heads: int = 2
    max_positions: int = 512

    @property
    def image_seq_len(self) -> int:
        return (self.frame_size // self.patch_size) ** 2 // self.scale_factor**2


@dataclass(frozen=True)
class PretrainSettings(Settings):
    """Pretraining on scene descriptions (plain data). The number of updates is what teaches the
    lead car's motion (shrinking vs growing across the frames): with the old 12-px patches, no
    stopped car was seen after 3 epochs, almost every one after 12; at equal cost, smaller batches
    (more steps) learn it sooner. Drawing clips by the square root of their lead state's rarity
    (``balance=0.5``) lets the rare turning cars be learnt too; ``balance=1`` costs the other
    elements (benchmarks/RESULTS.md, "Tiny VLM perception"). Only the tiny profile pretrains, so
    no profile changes a default: ``.tiny()`` is the defaults."""

    epochs: float = 8.0
    batch_size: int = 16
    lr: float = 2e-3
    warmup_steps: int = 30
    weight_decay: float = 0.05
    seed: int = 0
    text_batch_size: int = 8  # plain-text lines (``language_texts``) per step
    text_weight: float = 0.5
    balance: float = 0.5  # draw clips with weight (share of their lead-car state) ** -balance: 1 = states equally often
    held_out: int | None = None  # toy-test clips whose descriptions are checked after pretraining (None: all)


# ---------------------------------------------------------------------------------------------
# Tokenizer, processor, config
# ---------------------------------------------------------------------------------------------
def language_texts(seed: int = 0, scenes: list[str] | None = None) -> list[str]:
    """What the decoder reads as plain text besides the descriptions: every single-label target
    text, random multi-label ones, JSON objects with the Stage-3 fields (``scene`` drawn from
    ``scenes``), the chat template's words; each as an answer after ``Assistant:``.

    A real VLM's decoder is a language model that has read every token of its vocabulary; without
    these texts the label phrases' embeddings would stay random (descriptions never use them) and
    LoRA, which leaves embeddings and the LM head frozen, could not learn to write them. The
    ``Assistant:`` prefix makes the first token of each answer a prediction target too: a token
    that is never predicted keeps a near-zero LM-head row, and then no adapter can give it more
    than a few percent of probability. They pair actions, reasons and scenes at random and show no
    image: nothing here tells which answer fits which scene.
    """
    rng = np.random.default_rng(seed)
    one_hot = np.eye(N_ACTIONS, dtype=int), np.eye(N_REASONS, dtype=int)
    texts = [target_text(one_hot[0][a], one_hot[1][r]) for a in range(N_ACTIONS) for r in range(N_REASONS)]
    for _ in range(100):
        texts.append(target_text(rng.random(N_ACTIONS) < 0.4, rng.random(N_REASONS) < 0.15))
    for _ in range(100):
        actions, reasons = rng.random(N_ACTIONS) < 0.4, rng.random(N_REASONS) < 0.15
        acts = [p for p, on in zip(ACTION_PHRASES, actions) if on] or [ACTION_PHRASES[0]]
        rsns = [p for p, on in zip(REASON_PHRASES, reasons) if on]
        scene = str(rng.choice(scenes)) if scenes else ""
        texts.append(json.dumps({"scene": scene, "actions": acts, "reasons": rsns,
                                 "justification": f"{' and '.join(acts)} because of {' and '.join(rsns).lower() or 'the scene'}."},
                                separators=(",", ":")))
    return [f"Assistant: {t}" for t in texts] + ["User: Assistant:", " Describe the scene. What should the car do, and why?"]


def corpus(descriptions: list[str]) -> list[str]:
    """The tokenizer's training text: descriptions (as answers, after "Assistant:") and ``language_texts``."""
    return [f" {d}" for d in descriptions] + language_texts()


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (GPT-2 style, as SmolVLM's) with the Idefics3 special tokens."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<|im_start|>", eos_token=prompts.END_OF_UTTERANCE,
        pad_token="<|im_end|>", unk_token="<|endoftext|>", model_max_length=TinySpec.max_positions,
    )


def make_processor(tokenizer, spec: TinySpec) -> Idefics3Processor:
    """An Idefics3 processor for square frames of ``spec.frame_size`` px, without image splitting."""
    edge = {"longest_edge": spec.frame_size}
    images = Idefics3ImageProcessor(size=edge, max_image_size=edge, do_image_splitting=False,
                                    image_mean=[0.5] * 3, image_std=[0.5] * 3)  # SigLIP's normalisation
    return Idefics3Processor(image_processor=images, tokenizer=tokenizer, image_seq_len=spec.image_seq_len,
                             chat_template=CHAT_TEMPLATE)


def make_config(tokenizer, spec: TinySpec) -> Idefics3Config:
    vision = dict(hidden_size=spec.vision_hidden, intermediate_size=4 * spec.vision_hidden,
                  num_hidden_layers=spec.vision_layers, num_attention_heads=spec.vision_heads,
                  image_size=spec.frame_size, patch_size=spec.patch_size)
    text = dict(model_type="llama", vocab_size=len(tokenizer), hidden_size=spec.text_hidden,
                intermediate_size=64 * round(8 * spec.text_hidden / 3 / 64), num_hidden_layers=spec.text_layers,
                num_attention_heads=spec.text_heads, num_key_value_heads=spec.text_kv_heads,
                max_position_embeddings=spec.max_positions, rms_norm_eps=1e-5, tie_word_embeddings=False,
                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id)
    return Idefics3Config(vision_config=vision, text_config=text, scale_factor=spec.scale_factor,
                          image_token_id=tokenizer.convert_tokens_to_ids("<image>"), tie_word_embeddings=False,
                          pad_token_id=tokenizer.pad_token_id)


def untrained(texts: list[str], spec: TinySpec = TinySpec(), seed: int = 0):
    """(model, processor) of a randomly initialised tiny model, its tokenizer trained on ``texts``."""
    tokenizer = train_tokenizer(texts, spec.vocab_size)
    processor = make_processor(tokenizer, spec)
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(make_config(tokenizer, spec))
    model.generation_config.eos_token_id = prompts.end_of_utterance_id(processor)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, processor


# ---------------------------------------------------------------------------------------------
# Pretraining on descriptions
# ---------------------------------------------------------------------------------------------
def _frames(root: Path, names: list[str], progress: bool = False) -> list[list]:
    from tqdm.auto import tqdm

    return [[load_image(p) for p in frame_paths(root, name)]
            for name in tqdm(names, desc="frames", disable=not progress, mininterval=1.0)]


def _lr_at(step: int, total: int, settings: PretrainSettings) -> float:
    """Linear warmup, then cosine decay to 10 % of the peak."""
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, total - settings.warmup_steps)
    return settings.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def shuffled(description: str, rng: np.random.Generator) -> str:
    """The description's sentences in random order: the model cannot lean on a fixed order, so at
    every position it must know the whole scene (what it has not said yet)."""
    sentences = re.split(r"(?<=\.) ", description)
    return " ".join(sentences[i] for i in rng.permutation(len(sentences)))


class FrameCache:
    """Every clip's frames run through the image processor once (held as uint8: the processor's
    values are ``k / 127.5 - 1``), so that a training step only tokenizes its texts. A batch is
    what ``prompts.encode`` makes of the same clips and targets (all clips have the same number
    of frames, so the same prompt)."""

    def __init__(self, processor, clips: list[list], chunk: int = 64, progress: bool = False):
        from tqdm.auto import tqdm

        template = prompts.encode(processor, clips[:1])
        self.processor, self.prompt = processor, template["input_ids"][0].tolist()
        self.pixel_mask = template.get("pixel_attention_mask")
        starts = tqdm(range(0, len(clips), chunk), desc="image processor", disable=not progress, mininterval=1.0)
        self.pixels = torch.cat([((prompts.encode(processor, clips[i:i + chunk])["pixel_values"] + 1) * 127.5)
                                 .round().to(torch.uint8) for i in starts])

    def batch(self, indices: list[int], targets: list[str]):
        tokenizer = self.processor.tokenizer
        answers = tokenizer([f" {t}{prompts.END_OF_UTTERANCE}" for t in targets], add_special_tokens=False)["input_ids"]
        width, p = len(self.prompt) + max(map(len, answers)), len(self.prompt)
        input_ids = torch.full((len(indices), width), tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        labels = torch.full_like(input_ids, prompts.IGNORE_INDEX)
        for row, answer in enumerate(answers):
            input_ids[row, :p + len(answer)] = torch.tensor(self.prompt + answer)
            attention_mask[row, :p + len(answer)] = 1
            labels[row, p:p + len(answer)] = torch.tensor(answer)
        inputs = dict(input_ids=input_ids, attention_mask=attention_mask, labels=labels,
                      pixel_values=self.pixels[indices].float() / 127.5 - 1)
        if self.pixel_mask is not None:
            mask = self.pixel_mask.expand(len(indices), *self.pixel_mask.shape[1:])
            inputs["pixel_attention_mask"] = mask.contiguous()
        return inputs


def clip_weights(states: list[str], balance: float) -> np.ndarray | None:
    """Sampling probabilities that weight each clip by its state's share ** -balance (None: uniform)."""
    if not balance:
        return None
    values, counts = np.unique(states, return_counts=True)
    share = dict(zip(values, counts / len(states)))
    weights = np.array([share[s] ** -balance for s in states])
    return weights / weights.sum()


def pretrain(model, processor, clips: list[list], descriptions: list[str], texts: list[str],
             settings: PretrainSettings, progress: bool = True, states: list[str] | None = None) -> list[float]:
    """Train every parameter on (frames -> description, sentences shuffled) plus, each step, a
    batch of ``texts`` as plain language modelling; returns the loss of each step. ``states``
    (each clip's lead-car state) with ``settings.balance`` evens out how often each state is drawn."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(settings.seed)
    tokenizer = processor.tokenizer
    frames = FrameCache(processor, clips, progress=progress)
    weights = clip_weights(states, settings.balance) if states else None
    total = int(settings.epochs * len(clips) / settings.batch_size)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=settings.lr, betas=(0.9, 0.98))
    order: list[int] = []
    losses = []
    model.train()
    for step in (bar := tqdm(range(total), desc="pretraining", disable=not progress)):
        if len(order) < settings.batch_size:
            order += (rng.permutation(len(clips)) if weights is None else
                      rng.choice(len(clips), size=len(clips), p=weights)).tolist()
        batch, order = order[: settings.batch_size], order[settings.batch_size:]
        captions = frames.batch(batch, [shuffled(descriptions[i], rng) for i in batch])
        language = tokenizer([texts[i] for i in rng.integers(len(texts), size=settings.text_batch_size)],
                             padding=True, return_tensors="pt", add_special_tokens=False)
        language["labels"] = language["input_ids"].masked_fill(language["attention_mask"] == 0, prompts.IGNORE_INDEX)
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, total, settings)
        loss = (model(**{k: v.to(model.device) for k, v in captions.items()}).loss
                + settings.text_weight * model(**language.to(model.device)).loss)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    model.eval()
    return losses


def _sentences(text: str) -> set[str]:
    return {s.strip() for s in text.split(".") if s.strip()}


# ---------------------------------------------------------------------------------------------
# Build, cache, CLI
# ---------------------------------------------------------------------------------------------
def tiny_dir() -> Path:
    return ZOO_DIR / TINY_NAME


def build(cfg: Config | None = None, out: str | Path | None = None, spec: TinySpec = TinySpec(),
          settings: PretrainSettings | None = None, progress: bool = True, device: str = "cpu") -> Path:
    """Build, pretrain and save the tiny VLM to ``out`` (default ``tiny_dir()``) with ``settings``
    (default ``PretrainSettings.tiny()``); returns ``out``. ``build.json`` records the recipe, the
    timings and the perception scores on the held-out clips."""
    cfg = cfg or load("tiny")
    settings = settings or PretrainSettings.tiny()
    out = Path(out or tiny_dir())
    t0, c0 = time.perf_counter(), time.process_time()
    torch.manual_seed(settings.seed)
    random.seed(settings.seed)
    root = ensure_dataset(cfg)
    held_out = set(load_or_make_toy_split(cfg).test)
    train = [s for s in read_scenes(root) if s["file_name"] not in held_out]

    model, processor = untrained(corpus([s["description"] for s in train]), spec, settings.seed)
    model.to(device)
    clips = _frames(root, [s["file_name"] for s in train], progress)
    descriptions = [s["description"] for s in train]
    losses = pretrain(model, processor, clips, descriptions, language_texts(settings.seed, descriptions),
                      settings, progress, states=[s["scene"]["lead"] for s in train])
    train_seconds = time.perf_counter() - t0
    _, check, check_scenes = perception.toy_test_clips(cfg, settings.held_out)
    seen = perception.measure(model, processor, check, check_scenes)

    out.mkdir(parents=True, exist_ok=True)
    model.to("cpu").save_pretrained(out)
    processor.save_pretrained(out)
    info = dict(spec=asdict(spec), settings=asdict(settings), data=dict(root=root.name, seed=cfg.seed,
                pretraining_clips=len(train), held_out="toy test split"),
                parameters=sum(p.numel() for p in model.parameters()), vocab_size=len(processor.tokenizer),
                final_loss=float(np.mean(losses[-20:])),
                perception=dict(seen, lead_recall=perception.lead_recall(seen), passes_targets=perception.passes(seen)),
                train_seconds=round(train_seconds, 1), build_seconds=round(time.perf_counter() - t0, 1),
                cpu_seconds=round(time.process_time() - c0, 1), torch_threads=torch.get_num_threads(), device=device,
                versions=dict(torch=torch.__version__, transformers=transformers.__version__))
    (out / BUILD_INFO).write_text(json.dumps(info, indent=1))
    return out


def ensure_tiny(cfg: Config | None = None) -> Path:
    """The tiny model's directory, built first when it is missing."""
    path = tiny_dir()
    if not (path / "model.safetensors").is_file():
        build(cfg, path)
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Build and pretrain the tiny SmolVLM-architecture VLM.")
    p.add_argument("--out", type=Path, help=f"output directory (default: {tiny_dir()})")
    p.add_argument("--epochs", type=float, default=PretrainSettings.epochs)
    p.add_argument("--seed", type=int, default=PretrainSettings.seed)
    p.add_argument("--spec", nargs="*", default=[], metavar="KEY=VALUE", help="TinySpec fields to change")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="PretrainSettings fields to change")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    spec = TinySpec(**dataclass_overrides(a.spec, TinySpec, "--spec"))
    settings = PretrainSettings.tiny(**{"epochs": a.epochs, "seed": a.seed,
                                        **dataclass_overrides(a.set, PretrainSettings, "--set")})
    out = build(out=a.out, spec=spec, settings=settings, device=a.device)
    info = json.loads((out / BUILD_INFO).read_text())
    seen = info["perception"]
    worst = min(seen["elements"], key=seen["elements"].get)
    recall = " ".join(f"{k} {v:.2f}" if v is not None else f"{k} -" for k, v in seen["lead_recall"].items())
    print(f"built {out} in {info['build_seconds']} s ({info['cpu_seconds']} CPU s): {info['parameters']:,} parameters; "
          f"held-out clips: all elements right {seen['all_elements']:.3f}, worst element {worst} "
          f"{seen['elements'][worst]:.3f}, lead recall {recall}; targets met: {seen['passes_targets']}")


if __name__ == "__main__":
    main()

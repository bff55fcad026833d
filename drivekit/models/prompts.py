"""The model's input and output text shared by pretraining, SFT, A2C and the JSON stage.

A prompt is one user turn holding the clip's frames as images, written by the processor's own
chat template (SmolVLM's: ``<|im_start|>User:<image>...<end_of_utterance>\\nAssistant:``). By
default it carries no task text (the paper's Challenge 1); ``instruction`` appends one.

``encode`` turns a batch of clips into model inputs. Without targets the prompts are left-padded
for generation. With targets each row is ``prompt + " " + target + <end_of_utterance>`` (the
assistant turn as the chat template writes it), right-padded, and ``labels`` copy the target
tokens and hold -100 everywhere else: padding, the prompt and so its image tokens.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from transformers import BatchFeature

END_OF_UTTERANCE = "<end_of_utterance>"
IGNORE_INDEX = -100  # the label value cross-entropy skips


def messages(n_images: int, instruction: str | None = None) -> list[dict]:
    """The chat: one user turn with ``n_images`` images, then ``instruction`` if given."""
    content = [{"type": "image"} for _ in range(n_images)]
    if instruction:
        content.append({"type": "text", "text": instruction})
    return [{"role": "user", "content": content}]


def prompt(processor, n_images: int, instruction: str | None = None) -> str:
    """The prompt text, ending where the assistant's answer starts."""
    return processor.apply_chat_template(messages(n_images, instruction), add_generation_prompt=True)


def end_of_utterance_id(processor) -> int:
    return processor.tokenizer.convert_tokens_to_ids(END_OF_UTTERANCE)


def _prompts(processor, clips: Sequence[Sequence[Image.Image]], instruction: str | None) -> BatchFeature:
    texts = [prompt(processor, len(frames), instruction) for frames in clips]
    return processor(text=texts, images=[list(frames) for frames in clips], padding=True, padding_side="left",
                     return_tensors="pt")


def encode(processor, clips: Sequence[Sequence[Image.Image]], targets: Sequence[str] | None = None,
           instruction: str | None = None) -> BatchFeature:
    """Model inputs for a batch of clips (each a list of frames), with ``labels`` when ``targets`` are given."""
    inputs = _prompts(processor, clips, instruction)
    if targets is None:
        return inputs
    if len(targets) != len(clips):
        raise ValueError(f"{len(clips)} clips but {len(targets)} targets")
    tokenizer = processor.tokenizer
    answers = tokenizer([f" {t}{END_OF_UTTERANCE}" for t in targets], add_special_tokens=False)["input_ids"]
    rows = [ids[mask.bool()].tolist() for ids, mask in zip(inputs["input_ids"], inputs["attention_mask"])]
    width = max(len(p) + len(a) for p, a in zip(rows, answers))
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, (p, a) in enumerate(zip(rows, answers)):
        n = len(p) + len(a)
        input_ids[i, :n] = torch.tensor(p + a)
        attention_mask[i, :n] = 1
        labels[i, len(p):n] = torch.tensor(a)
    inputs.update(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    return inputs


@torch.no_grad()
def generate(model, processor, clips: Sequence[Sequence[Image.Image]], max_new_tokens: int = 32,
             instruction: str | None = None, **generate_kwargs) -> list[str]:
    """The model's answers to a batch of clips (greedy unless ``generate_kwargs`` say otherwise)."""
    inputs = encode(processor, clips, instruction=instruction).to(model.device)
    eou = end_of_utterance_id(processor)
    generate_kwargs = {"do_sample": False, **generate_kwargs}
    output = model.generate(**inputs, max_new_tokens=max_new_tokens, eos_token_id=eou,
                            pad_token_id=processor.tokenizer.pad_token_id, **generate_kwargs)
    new_tokens = output[:, inputs["input_ids"].shape[1]:]
    return [text.strip() for text in processor.batch_decode(new_tokens, skip_special_tokens=True)]

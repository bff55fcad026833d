"""Loading the VLM and its processor: one function for both profiles.

``load_vlm`` takes a model id (the paper's ``HuggingFaceTB/SmolVLM-Instruct``, the smaller
``HuggingFaceTB/SmolVLM-256M-Instruct``), a local directory (or a file in one), ``"tiny"``
(drivekit's own pretrained model, built on first use, see ``drivekit.models.zoo``) or a ``Config`` (its
``vlm``, ``quantize_4bit`` and image settings); every one of them goes through ``from_pretrained``.
A model id is read from the local Hugging Face cache when the cache holds it whole (no network), else
downloaded from the hub; when the hub cannot be reached either, it fails at once with a message that
says so (:func:`hub_source`), instead of minutes of download retries.
Options, as in the paper's QLoRA recipe:

- ``quantize_4bit``: bitsandbytes NF4 with double quantisation; compute in bf16 on a GPU that has
  it in hardware (Ampere, compute capability 8.0, or newer), fp16 on older GPUs (a T4: torch's
  ``is_bf16_supported()`` says True there, by emulation), float32 on a CPU. bitsandbytes 4-bit
  also runs, and trains, on a CPU.
- ``lora``: a new peft LoRA adapter (:class:`LoraSettings`) on the attention and MLP projections
  (q/k/v/o/gate/up/down), of the text decoder only or of the vision encoder too; only its
  parameters train. ``adapter`` loads a saved adapter instead (``trainable`` to go on training
  it, e.g. for RL after SFT).
- ``gradient_checkpointing``: recompute activations in the backward pass to save memory.
- ``image_edge`` / ``image_splitting``: the processor's resolution (longest edge before tiling)
  and tiling, passed to ``AutoProcessor.from_pretrained`` (a ``Config`` carries them).

Adapter helpers shared by the training loops: :func:`keep_4bit_trainable`, :func:`trainable_in_float32`,
:func:`set_lora_dropout`, :func:`reference_policy` (run the frozen SFT adapter as π_ref) and
:func:`load_adapter_weights`. What sampling may never emit: :func:`unsampleable_token_ids` (every special token
but the end tokens; ``load_vlm`` records them on the model, :func:`banned_token_ids` reads them back). What
stops a run whose loss or logits are inf or NaN: :class:`NonFinite`, which names the step and the remedy.
"""
from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlparse



import torch
from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training
from transformers import AutoModelForImageTextToText, AutoProcessor, BitsAndBytesConfig

from drivekit.models import prompts  # noqa: E402
from drivekit.core.config import Config  # noqa: E402
from drivekit.core.settings import Settings  # noqa: E402

TINY_VLM = "tiny"
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


TEXT_MODEL = "text_model"  # the decoder's module name in an Idefics3 (SmolVLM) model


@dataclass(frozen=True)
class LoraSettings(Settings):
    """A LoRA adapter's shape and place (plain data); the defaults are the SmolVLM fine-tuning recipe's,
    which the paper profile keeps on the text decoder only; ``LoraSettings.tiny()`` is the tiny VLM's
    wider adapter (``PROFILES``, :mod:`drivekit.core.settings`).

    ``targets`` are module names; ``vision=True`` puts LoRA on every module of those names, the
    vision encoder's attention included (q/k/v/o_proj exist there too); ``False`` only on the text
    decoder's (a regex on the module path, ``.*.text_model.*.(q_proj|...)``): the vision encoder and
    the connector stay frozen, so no backward pass runs through the image tiles and their forward
    builds no graph. The vision encoder is most of the forward cost per frame (benchmarks/RESULTS.md,
    "The paper profile at its real size").
    """

    r: int = 8
    alpha: int = 8
    dropout: float = 0.1
    targets: tuple[str, ...] = LORA_TARGETS
    vision: bool = True
    PROFILES: ClassVar[dict] = {"tiny": dict(r=16, alpha=32, dropout=0.05), "paper": dict(vision=False)}

    def target_modules(self) -> list[str] | str:
        """peft's ``target_modules``: the names, or (text decoder only) a regex on module paths."""
        if self.vision:
            return list(self.targets)
        return rf".*\.{TEXT_MODEL}\..*\.({'|'.join(self.targets)})"

    def config(self) -> LoraConfig:
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=self.target_modules(), init_lora_weights="gaussian")


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def native_bf16(device: str | torch.device) -> bool:
    """Whether a CUDA device computes in bf16 in hardware (compute capability 8.0, Ampere, or newer).

    Not ``torch.cuda.is_bf16_supported()``: that also counts emulation, and says True on a T4.
    """
    return tuple(torch.cuda.get_device_capability(torch.device(device))) >= (8, 0)


def compute_dtype(device: str | torch.device) -> torch.dtype:
    """bf16 on a GPU with native bf16, fp16 on an older GPU, float32 on a CPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return torch.float32
    return torch.bfloat16 if native_bf16(device) else torch.float16


def quantization_config(device: str | torch.device) -> BitsAndBytesConfig:
    """4-bit NF4 with double quantisation (QLoRA)."""
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute_dtype(device))


def resolve(name_or_path: str | Path) -> str:
    """What ``from_pretrained`` gets: ``"tiny"`` becomes the zoo directory (built when missing); a
    file of a saved model (its ``config.json`` or weights) becomes its folder; a model id stays."""
    if str(name_or_path) == TINY_VLM:
        from drivekit.models.zoo import ensure_tiny

        return str(ensure_tiny())
    path = Path(name_or_path).expanduser()
    if path.is_file():
        if not (path.parent / "config.json").is_file():
            raise ValueError(f"{path} is a file, and its folder holds no config.json: give a model id or the folder "
                             "of a saved model (save_pretrained layout)")
        return str(path.parent)
    if path.is_dir() and not (path / "config.json").is_file():
        raise ValueError(f"{path} holds no config.json: give a model id or the folder of a saved model "
                         "(save_pretrained layout)")
    return str(name_or_path)


HUB_TIMEOUT = 3.0  # seconds to reach the model hub before it counts as unreachable


def hub_reachable(timeout: float = HUB_TIMEOUT) -> bool:
    """Whether the Hugging Face hub (``HF_ENDPOINT``) answers a TCP connection within ``timeout`` seconds
    (False at once under ``HF_HUB_OFFLINE=1``). The name lookup runs in a thread, so it too is bounded."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    address = (url.hostname, url.port or (443 if url.scheme == "https" else 80))
    answered: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection(address, timeout=timeout):
                answered.append(True)
        except (OSError, ValueError):
            pass

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(answered)


def hub_cache(repo_id: str, cache_dir: str | Path | None = None) -> Path | None:
    """The local Hugging Face cache's snapshot folder of ``repo_id`` (no network), or None when it has none."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True, cache_dir=cache_dir))
    except Exception:  # not cached, or not a valid repository id
        return None


def hub_source(model_id: str, variable: str = "DRIVEKIT_VLM", cache_dir: str | Path | None = None) -> str:
    """What ``from_pretrained`` gets for a model id that is no local folder: the cache's snapshot folder
    when the local cache holds the model whole (its ``config.json`` and weights: read without any network
    call), else the id itself when the hub can be reached (it downloads there); else a ``ValueError`` at
    once that says the model is nowhere (``variable`` names the setting to change)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(model_id)
    except HFValidationError:
        raise ValueError(f"{model_id!r}: not a folder, and not a model id of the hub ('owner/name'): "
                         f"set {variable} to a model id or a saved model's folder") from None
    snapshot = hub_cache(model_id, cache_dir)
    weights = snapshot and any(p.suffix in (".safetensors", ".bin") for p in snapshot.iterdir())
    if snapshot and weights and (snapshot / "config.json").is_file():
        return str(snapshot)
    if hub_reachable():
        return model_id
    from huggingface_hub import constants

    where = "only partly in the local cache" if snapshot else "not in the local cache"
    hub = (f"the model hub ({urlparse(constants.ENDPOINT).hostname}) is unreachable (offline?)"
           if not constants.HF_HUB_OFFLINE else "HF_HUB_OFFLINE=1 keeps the model hub out")
    raise ValueError(f"{model_id!r}: not a folder and {where}, and {hub}: set {variable} to a saved model's folder")


def processor_options(image_edge: int | None = None, image_splitting: bool | None = None) -> dict:
    """``AutoProcessor.from_pretrained`` overrides of the image processor's resolution and tiling:
    ``size={"longest_edge": image_edge}`` (a frame is resized to it, then cut into tiles of the
    processor's ``max_image_size``) and ``do_image_splitting``; None keeps the saved setting."""
    options = {}
    if image_edge is not None:
        options["size"] = {"longest_edge": int(image_edge)}
    if image_splitting is not None:
        options["do_image_splitting"] = bool(image_splitting)
    return options


def load_vlm(source: Config | str | Path, *, quantize_4bit: bool | None = None, lora: LoraSettings | None = None,
             adapter: str | Path | None = None, trainable: bool = False, gradient_checkpointing: bool = False,
             device: str | torch.device | None = None, seed: int = 0, image_edge: int | None = None,
             image_splitting: bool | None = None):
    """(model, processor) from a ``Config`` (its ``vlm``, ``quantize_4bit``, ``image_edge`` and
    ``image_splitting``), a model id or a directory.

    ``quantize_4bit`` defaults to the config's setting, or False for a name; ``image_edge`` and
    ``image_splitting`` to the config's, else the processor's own (:func:`processor_options`).
    Give at most one of ``lora`` (a new adapter) and ``adapter`` (a saved one). A new adapter's
    random initial weights come from ``seed`` (the global random state is left as it was), so a
    run is repeatable.
    """
    if lora is not None and adapter is not None:
        raise ValueError("give lora= (a new adapter) or adapter= (a saved one), not both")
    if isinstance(source, Config):
        name = source.vlm
        quantize_4bit = source.quantize_4bit if quantize_4bit is None else quantize_4bit
        image_edge = source.image_edge if image_edge is None else image_edge
        image_splitting = source.image_splitting if image_splitting is None else image_splitting
    else:
        name = source
    device = torch.device(device) if device is not None else default_device()
    path = resolve(name)
    if not Path(path).is_dir():  # a model id: the local cache, else the hub if it answers, else a clear error
        path = hub_source(path)

    processor = AutoProcessor.from_pretrained(path, **processor_options(image_edge, image_splitting))
    model = AutoModelForImageTextToText.from_pretrained(
        path, dtype=compute_dtype(device), device_map={"": device},
        quantization_config=quantization_config(device) if quantize_4bit else None,
    )
    model.generation_config.eos_token_id = prompts.end_of_utterance_id(processor)
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    training = lora is not None or (adapter is not None and trainable)
    checkpointing = {"use_reentrant": False}  # works under DistributedDataParallel too
    if quantize_4bit and training:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                                gradient_checkpointing_kwargs=checkpointing)
    elif gradient_checkpointing and training:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpointing)
        model.enable_input_require_grads()
    if lora is not None:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = get_peft_model(model, lora.config())
    elif adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=trainable)
    if training:
        frozen_vision_without_gradients(model)
        trainable_in_float32(model)
    else:
        model.eval()
    mark_unsampleable(model, processor)
    return model, processor


# ---------------------------------------------------------------------------------------------
# fp16: trainable weights in float32, and a run that stops on an inf or NaN loss
# ---------------------------------------------------------------------------------------------
def trainable_in_float32(model: torch.nn.Module) -> int:
    """Cast every trainable parameter held in float16 or bfloat16 to float32; returns how many were cast.

    With fp16 compute (a T4, the ``t4`` preset) a LoRA weight or its Adam update kept in float16 would round
    small updates away and overflow at 65504; in float32 only the frozen base computes in fp16 (peft casts a
    LoRA layer's input to its weight's dtype). peft already makes LoRA weights on a 4-bit base float32 and
    ``prepare_model_for_kbit_training`` the other trainable ones: this holds it for any other route. On a CPU
    (float32 compute) nothing changes."""
    cast = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.float16, torch.bfloat16):
            param.data = param.data.float()
            cast += 1
    return cast


def fp16_compute(model: torch.nn.Module) -> bool:
    """Whether ``model`` runs on a GPU and computes in float16 (:func:`compute_dtype` on a GPU without native
    bf16, such as a T4: its 4-bit layers' compute dtype, or its weights), so that a backward needs loss
    scaling. False on a CPU."""
    if next(model.parameters()).device.type != "cuda":
        return False
    if any(getattr(m, "compute_dtype", None) == torch.float16 for m in model.modules()):
        return True
    return any(p.dtype == torch.float16 for p in model.parameters())


REMEDY = "use compute dtype float32/bfloat16 or lower the lr"


class NonFinite(FloatingPointError):
    """A training loss (or logits) that is inf or NaN: ``"<algorithm> step <step>: <what> is <value> (fp16
    overflow?): <remedy>"``. SFT and GRPO stop at once; A2C skips the step and stops after ``max_failures``."""

    def __init__(self, algorithm: str, step: int | None, what: str, value):
        self.algorithm, self.step, self.what = algorithm, step, what
        try:
            value = float(value)
        except (TypeError, ValueError):
            pass
        where = f"{algorithm} step {step}" if step is not None else f"{algorithm} sampling"
        super().__init__(f"{where}: {what} is {value} (fp16 overflow?): {REMEDY}")


# ---------------------------------------------------------------------------------------------
# Tokens sampling may never emit
# ---------------------------------------------------------------------------------------------
UNSAMPLEABLE = "_drivekit_unsampleable_ids"  # the attribute load_vlm records them under, on the transformers model


def unsampleable_token_ids(processor, model: torch.nn.Module | None = None) -> list[int]:
    """Token ids a sampled completion may never hold: the image token (a completion holding one makes the
    model count more image tokens than image features, "image features and image tokens do not match") and
    every other special token of the tokenizer (``<fake_token_around_image>``, ``<global-img>``, the
    ``<row_i_col_j>`` tile tokens, ``<|im_start|>``, padding, ...), except the end tokens (the tokenizer's
    end-of-sequence token, ``<end_of_utterance>`` and ``model``'s generation ``eos_token_id``), which end
    a completion. Sorted."""
    tokenizer = getattr(processor, "tokenizer", processor)
    ends = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(prompts.END_OF_UTTERANCE)}
    generation = getattr(model, "generation_config", None) if model is not None else None
    eos = getattr(generation, "eos_token_id", None)
    ends.update(eos if isinstance(eos, (list, tuple)) else [eos])
    special = set(tokenizer.all_special_ids)
    special.update(i for i, added in tokenizer.added_tokens_decoder.items() if added.special)
    image = getattr(getattr(model, "config", None), "image_token_id", None)
    if image is None:
        image = getattr(processor, "image_token_id", None)
    if image is not None:
        special.add(int(image))
    return sorted(int(i) for i in special - {e for e in ends if e is not None})


def base_of(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model under a peft wrapper (the model itself otherwise)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def mark_unsampleable(model: torch.nn.Module, processor) -> list[int]:
    """Record :func:`unsampleable_token_ids` on ``model`` (read back by :func:`banned_token_ids`)."""
    ids = unsampleable_token_ids(processor, base_of(model))
    setattr(base_of(model), UNSAMPLEABLE, ids)
    return ids


def banned_token_ids(model: torch.nn.Module) -> list[int]:
    """The tokens sampling from ``model`` must never emit: those :func:`mark_unsampleable` recorded
    (``load_vlm`` does), and in any case the image token of a VLM's config."""
    base = base_of(model)
    ids = set(getattr(base, UNSAMPLEABLE, ()))
    image = getattr(base.config, "image_token_id", None)
    if image is not None:
        ids.add(int(image))
    return sorted(ids)


VISION_MODEL = "vision_model"  # the vision encoder's module name in an Idefics3 (SmolVLM) model


_GRAD_MODES: list[bool] = []  # the grad mode before each running frozen-encoder forward, innermost last


def _disable_grad(module, args) -> None:
    _GRAD_MODES.append(torch.is_grad_enabled())
    torch.set_grad_enabled(False)


def _restore_grad(module, args, output) -> None:
    torch.set_grad_enabled(_GRAD_MODES.pop())


def frozen_vision_without_gradients(model: torch.nn.Module) -> bool:
    """Run the vision encoder without autograd when none of its parameters trains; True if so.

    A frozen encoder needs no graph, but transformers' gradient checkpointing (and peft) make
    every sub-model's input embeddings require grad, the vision encoder's patch embeddings
    included: each backward pass would then run, and with checkpointing recompute, the encoder on
    every image tile. Hooks around its forward switch autograd off there (and back on, also when
    the forward raises), so the image features enter the decoder as constants.
    """
    encoders = [m for name, m in model.named_modules() if name.split(".")[-1] == VISION_MODEL]
    if len(encoders) != 1 or any(p.requires_grad for p in encoders[0].parameters()):
        return False
    encoder = encoders[0]
    if not getattr(encoder, "_drivekit_no_grad", False):
        encoder.register_forward_pre_hook(_disable_grad)
        encoder.register_forward_hook(_restore_grad, always_call=True)
        encoder._drivekit_no_grad = True
    return True


def keep_4bit_trainable(model: torch.nn.Module) -> int:
    """Stop bitsandbytes from repacking 4-bit weights for CPU inference (and undo it where done).

    On a CPU with AVX512-BF16, ``bnb.nn.Linear4bit`` converts its weight, the first time it runs
    in eval mode without gradients, to a packed layout whose matmul has no backward (and adds the
    bias in place, which autograd rejects). RL alternates no-grad sampling and training on the
    same modules, so the conversion must not happen. Returns the number of 4-bit layers seen.
    """
    seen = 0
    for module in model.modules():
        if not hasattr(module, "support_avx512bf16_for_cpu"):
            continue
        seen += 1
        module.support_avx512bf16_for_cpu = False
        state = getattr(module.weight, "quant_state", None)
        if state is not None and getattr(state, "packing_format_for_cpu", False):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

            module.weight.data, module.weight.quant_state = _convert_weight_packed_for_cpu_inverse(
                module.weight.data, state)
    return seen


# ---------------------------------------------------------------------------------------------
# Adapters
# ---------------------------------------------------------------------------------------------
def set_lora_dropout(model: torch.nn.Module, p: float) -> int:
    """Give every LoRA layer of ``model`` dropout ``p`` on its input (0: none, as peft builds it);
    returns the number of layers. A saved adapter keeps the dropout it was made with unless told."""
    layers = [m for m in model.modules() if isinstance(getattr(m, "lora_dropout", None), torch.nn.ModuleDict)]
    for layer in layers:
        for name in list(layer.lora_dropout.keys()):
            layer.lora_dropout[name] = torch.nn.Dropout(p) if p > 0 else torch.nn.Identity()
    return len(layers)


@contextmanager
def reference_policy(model: torch.nn.Module, adapter: str | None):
    """Run ``model`` as the reference policy: the frozen ``adapter`` active, or (None) all adapters disabled."""
    if not hasattr(model, "peft_config"):
        yield
        return
    if adapter is None:
        with model.disable_adapter():
            yield
        return
    active = model.active_adapter
    model.set_adapter(adapter, inference_mode=True)
    try:
        yield
    finally:
        model.set_adapter(active)  # re-enables gradients on the trained adapter, freezes the reference


def load_adapter_weights(model: torch.nn.Module, folder: str | Path, adapter: str | None = None) -> None:
    """Copy the adapter weights saved in ``folder`` (peft layout) into ``model``'s ``adapter`` (default: active)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    folder = Path(folder)
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"no adapter weights in {folder}")
    adapter = adapter or model.active_adapter
    result = set_peft_model_state_dict(model, load_file(weights), adapter_name=adapter)
    unexpected = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if unexpected:
        raise ValueError(f"{len(unexpected)} adapter weights in {folder} do not fit the model, e.g. {unexpected[:3]}")


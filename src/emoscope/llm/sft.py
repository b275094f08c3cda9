"""LoRA supervised fine-tuning of a causal LM on PRC prompts, with an easy-to-hard curriculum.

The training side of PRC-Emo (Li et al., "Do LLMs Feel? Teaching Emotion Recognition with
Prompts, Retrieval, and Curriculum Learning", AAAI 2026; reference code LiXinran6/PRC-Emo):

* every training utterance becomes its PRC prompt (:mod:`emoscope.llm.prompting`: stage-1 cues,
  retrieved demonstrations that never include the utterance itself) answered by its gold label;
  the loss is computed on the answer tokens only;
* LoRA (Hu et al., 2022) on all linear layers with the paper's settings as defaults: r = 32,
  α = 128, dropout 0.05, learning rate 3e-4 with a linear schedule (3% warm-up), 4 epochs,
  batch 1 × 4 accumulation steps, gradient clipping 0.3, NEFTune noise α = 5 (Jain et al., 2023),
  sequences up to 2048 tokens;
* the curriculum of :mod:`emoscope.curriculum`: dialogues scored by (speaker-weighted) emotion
  shifts, training items sorted into 2 buckets, one bucket added per epoch, then the full data.

The reference trains with TRL's ``SFTTrainer`` and sequence packing (loss on every token);
emoscope uses its own loop without packing and masks the prompt, so the model learns to answer
with the label alone. The adapter folder (``adapter_config.json``, ``adapter_model.safetensors``,
the tokenizer, and ``emoscope_sft.json`` with the prompt settings and the training log) can be
given to the ``llm`` recogniser as its model.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emoscope._io import write_json
from emoscope._version import __version__
from emoscope.errors import EmoscopeError
from emoscope.llm.base import ChatBackend
from emoscope.llm.pipeline import PRCPipeline, load_llm
from emoscope.llm.prompting import VARIANTS

__all__ = [
    "SFTConfig",
    "SFTExample",
    "build_examples",
    "encode_example",
    "response_loss",
    "train_lora",
    "train_sft",
]

SFT_FORMAT = "emoscope-llm-sft"


@dataclass
class SFTConfig:
    """Every setting of a LoRA fine-tuning run; the defaults are the paper's.

    Data: ``dataset``/``split`` (a name known to :func:`emoscope.datasets.load_dataset`),
    ``taxonomy`` to map its labels, ``limit`` to use only the first examples (whole dialogues).
    Prompts: ``prompt`` variant, ``template``, ``retrieve`` (k), ``store`` (default: built from
    the training data itself, with self-exclusion), ``window``/``future``/``cue_window``; the
    stage-1 cues come from ``cue_backend``/``cue_model`` (default: the base model).
    LoRA and optimisation: ``lora_r``, ``lora_alpha``, ``lora_dropout``, ``target_modules``
    (``"all-linear"`` or comma-separated module names), ``lr``, ``scheduler`` (a
    ``transformers.get_scheduler`` name), ``warmup_ratio``, ``epochs``, ``batch_size``,
    ``grad_accum``, ``max_grad_norm``, ``max_seq_len``, ``neftune_alpha`` (0 turns it off),
    ``length_group`` (micro-batches are formed inside windows of that many micro-batches of
    consecutive items, sorted by length, so a batch pads less; 1 turns it off).
    Curriculum: ``curriculum`` (``none``, ``emotion-shift``, ``speaker-weighted``),
    ``n_buckets``, ``epochs_per_stage``. ``bf16_autocast`` runs forward passes in bfloat16
    autocast (much faster on CPUs with AMX; a laptop without it gains less).
    """

    base_model: str = ""
    dataset: str = "meld"
    split: str = "train"
    taxonomy: str | None = None
    data_root: str | None = None
    limit: int | None = None
    prompt: str = "prc"
    template: str | None = None
    retrieve: int = 3
    store: str | None = None
    window: int = 5
    future: int = 0
    cue_window: int = 5
    cue_backend: str = "hf"
    cue_model: str | None = None
    cue_base_url: str | None = None
    cue_max_new_tokens: int = 320
    cache_dir: str | None = None
    lora_r: int = 32
    lora_alpha: int = 128
    lora_dropout: float = 0.05
    target_modules: str = "all-linear"
    lr: float = 3e-4
    scheduler: str = "linear"
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    epochs: int = 4
    batch_size: int = 1
    grad_accum: int = 4
    max_grad_norm: float = 0.3
    max_seq_len: int = 2048
    neftune_alpha: float = 5.0
    length_group: int = 16
    curriculum: str = "speaker-weighted"
    n_buckets: int = 2
    epochs_per_stage: int = 1
    seed: int = 42
    device: str = "auto"
    dtype: str = "auto"
    load_in_4bit: bool = False
    gradient_checkpointing: bool = False
    bf16_autocast: bool = False

    def check(self) -> None:
        """Raise :class:`EmoscopeError` naming the first invalid setting."""
        if not self.base_model:
            raise EmoscopeError("SFT needs a base model (a folder or Hub id of a causal LM)")
        if self.prompt not in VARIANTS:
            raise EmoscopeError(
                f"unknown prompt variant {self.prompt!r}; expected one of: {', '.join(VARIANTS)}"
            )
        positive = {
            "lora_r": self.lora_r,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "max_seq_len": self.max_seq_len,
            "n_buckets": self.n_buckets,
            "epochs_per_stage": self.epochs_per_stage,
            "length_group": self.length_group,
        }
        for name, value in positive.items():
            if value < 1:
                raise EmoscopeError(f"{name} must be at least 1, got {value}")
        if self.lr <= 0 or self.lora_alpha <= 0:
            raise EmoscopeError("lr and lora_alpha must be positive")
        if not 0 <= self.lora_dropout < 1 or not 0 <= self.warmup_ratio < 1:
            raise EmoscopeError("lora_dropout and warmup_ratio must be in [0, 1)")
        if self.retrieve < 0 or (self.prompt == "few-shot" and self.retrieve == 0):
            raise EmoscopeError("retrieve must be >= 0 (and > 0 for the few-shot prompt)")
        if self.prompt == "zero-shot" and self.retrieve > 0:
            raise EmoscopeError("the zero-shot prompt shows no demonstrations; set retrieve to 0")
        from emoscope.curriculum import CurriculumConfig

        CurriculumConfig(strategy=self.curriculum)  # validates the strategy name
        full = (self.n_buckets - 1) * self.epochs_per_stage + 1
        if self.curriculum != "none" and self.n_buckets > 1 and self.epochs < full:
            raise EmoscopeError(
                f"epochs={self.epochs} never reaches the full data: the {self.n_buckets}-bucket "
                f"curriculum adds one bucket every {self.epochs_per_stage} epoch(s), so it needs "
                f"at least {full} epochs (or curriculum 'none')"
            )


@dataclass
class SFTExample:
    """One training item: the chat prompt, the answer to learn, and its curriculum difficulty."""

    messages: list[dict[str, str]]
    response: str
    difficulty: float = 0.0
    id: str | None = None
    cues: dict[str, Any] = field(default_factory=dict)


def _say(progress: Callable[[str], None] | None, message: str) -> None:
    if progress is not None:
        progress(message)


def build_examples(
    config: SFTConfig,
    *,
    cue_backend: ChatBackend | None = None,
    store: Any = None,
    progress: Callable[[str], None] | None = None,
    data: Any = None,
) -> list[SFTExample]:
    """The training items of ``config``: PRC prompts of the labelled utterances, gold answers.

    ``data`` is a :class:`~emoscope.datasets.Dataset` to use instead of loading
    ``config.dataset``/``config.split`` (e.g. a chosen subset of whole dialogues).

    ``cue_backend`` answers the stage-1 prompts (default: built from ``config.cue_backend`` and
    ``config.cue_model``, i.e. the base model); ``store`` is the demonstration store (default:
    ``config.store``, else one built from the training data, never retrieving an item for
    itself).
    """
    from emoscope.curriculum import CurriculumConfig, example_difficulties
    from emoscope.datasets import load_dataset
    from emoscope.recognizers.base import flatten_inputs

    config.check()
    if data is None:
        data = load_dataset(
            config.dataset, config.split, root=config.data_root, taxonomy=config.taxonomy
        )
    data = data.limit(config.limit)
    if data.taxonomy is None:
        raise EmoscopeError(f"dataset {config.dataset!r} has no emotion labels to learn")
    tax = data.taxonomy
    targets = flatten_inputs(data.inputs(), check=False)
    if len(targets) != len(data.examples):
        raise EmoscopeError(
            f"dataset {data.name!r}: {len(targets)} utterances but {len(data.examples)} examples"
        )
    difficulties = example_difficulties(data, CurriculumConfig(strategy=config.curriculum))
    source = f"{data.name}-{data.split}"
    if store is None and config.store and config.retrieve > 0:
        from emoscope.retrieval import DemonstrationStore

        store = DemonstrationStore.load(config.store)
    if store is None and config.retrieve > 0:
        from emoscope.retrieval import DemonstrationStore

        _say(progress, f"embedding {len(data)} utterances for the demonstration store")
        store = DemonstrationStore()
        store.add_dataset(data, source=source)
    own_backend = cue_backend is None and config.prompt == "prc"
    if own_backend:
        options = {
            "device": config.device,
            "dtype": config.dtype,
            "load_in_4bit": config.load_in_4bit,
            "base_url": config.cue_base_url,
        }
        cache = Path(config.cache_dir) / "responses.sqlite" if config.cache_dir else None
        cue_backend = load_llm(
            config.cue_backend, config.cue_model or config.base_model, options, cache=cache
        )
    pipeline = PRCPipeline.create(
        tax,
        config.prompt,
        template=config.template,
        window=config.window,
        future=config.future,
        cue_window=config.cue_window,
        k=config.retrieve,
        store=store,
        cue_llm=cue_backend,
        cue_cache_dir=Path(config.cache_dir) / "cues" if config.cache_dir else None,
        cue_max_new_tokens=config.cue_max_new_tokens,
        progress=lambda done, total: _say(progress, f"stage-1 cues: {done}/{total} prompts"),
    )
    from emoscope.retrieval import Query

    queries = [Query.from_example(e, source=source) for e in data.examples]
    messages, cues, _ = pipeline.prompts(targets, queries)
    if own_backend:
        # Free the stage-1 model before the model to train is loaded.
        del pipeline, cue_backend
        _free_memory()

    out: list[SFTExample] = []
    for m, e, c, diff in zip(messages, data.examples, cues, difficulties, strict=True):
        if not e.labels:
            continue
        out.append(
            SFTExample(
                messages=m,
                response=", ".join(e.labels) if tax.multi_label else e.labels[0],
                difficulty=float(diff),
                id=e.id,
                cues=c.to_dict() if config.prompt == "prc" else {},
            )
        )
    if not out:
        raise EmoscopeError(f"dataset {config.dataset!r} ({config.split}) has no labelled examples")
    return out


def _free_memory() -> None:
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def encode_example(
    tokenizer: Any,
    messages: Sequence[dict[str, str]],
    response: str,
    max_seq_len: int,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> tuple[list[int], list[int], bool]:
    """Token ids and labels of one item; labels are -100 on the prompt (loss on the answer only).

    The prompt is the chat template with the generation prompt, exactly as at inference; the
    answer is the response text followed by the end-of-sequence token. A prompt too long for
    ``max_seq_len`` loses its beginning (the question and labels at its end are kept); the third
    value says whether that happened.
    """
    from emoscope.models import encode_prompt, render_chat

    kwargs = {"enable_thinking": False} if chat_template_kwargs is None else chat_template_kwargs
    prompt = render_chat(tokenizer, messages, chat_template_kwargs=kwargs)
    prompt_ids = encode_prompt(tokenizer, prompt)
    answer_ids = list(tokenizer(response, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is not None:
        answer_ids.append(int(tokenizer.eos_token_id))
    if len(answer_ids) >= max_seq_len:
        raise EmoscopeError(f"max_seq_len {max_seq_len} cannot hold the answer {response!r}")
    room = max_seq_len - len(answer_ids)
    truncated = len(prompt_ids) > room
    if truncated:
        prompt_ids = prompt_ids[-room:]
    return prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids, truncated


def _collate(batch: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    import torch

    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
        mask[i, : len(x)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def answer_loss(model: Any, batch: dict[str, Any], reduction: str = "mean") -> Any:
    """The mean cross-entropy over a batch's answer tokens, as ``model(**batch).loss`` gives it,
    with the vocabulary projection computed only at the positions that predict an answer token
    (the union over the batch's rows). For a 200-token prompt and a 3-token answer, that skips
    nearly all of the LM head's forward and backward work, a large share of a small model's
    step when its vocabulary is big (SmolLM2-135M projects 576 dimensions onto 49,152 tokens).
    ``reduction="sum"`` gives the sum instead."""
    import torch

    labels = batch["labels"]
    target = labels[:, 1:]
    keep = (target != -100).any(0).nonzero().squeeze(1)  # positions predicting an answer token
    out = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep
    )
    logits = out.logits.float()
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        target[:, keep].reshape(-1),
        ignore_index=-100,
        reduction=reduction,
    )


def response_loss(
    model: Any, encoded: Sequence[tuple[list[int], list[int]]], pad_id: int, batch_size: int = 4
) -> float:
    """Mean cross-entropy per answer token of ``model`` over ``encoded`` items (no training)."""
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, len(encoded), batch_size):
            batch = _collate(encoded[start : start + batch_size], pad_id)
            batch = {k: v.to(device) for k, v in batch.items()}
            total += float(answer_loss(model, batch, reduction="sum"))
            count += int((batch["labels"][:, 1:] != -100).sum())
    model.train(was_training)
    return total / max(count, 1)


def _micro_batches(
    items: Sequence[int], lengths: Sequence[int], batch_size: int, length_group: int = 1
) -> list[list[int]]:
    """Cut an epoch's item order into micro-batches of ``batch_size``.

    With ``length_group`` > 1, each window of ``length_group * batch_size`` consecutive items
    is sorted by ``lengths`` (longest first, stable) before it is cut, as ``group_by_length``
    does in the transformers Trainer: a batch then pads less, every item is still seen once,
    and the epoch's order (shuffle or curriculum) holds between windows. Deterministic, so a
    run resumed at a micro-batch index continues the same batches.
    """
    if len(lengths) != len(items):
        raise EmoscopeError(f"{len(items)} items but {len(lengths)} lengths")
    order = list(range(len(items)))
    window = batch_size * max(1, length_group)
    if length_group > 1:
        order = [
            j
            for start in range(0, len(order), window)
            for j in sorted(order[start : start + window], key=lambda k: -lengths[k])
        ]
    return [
        [items[j] for j in order[start : start + batch_size]]
        for start in range(0, len(order), batch_size)
    ]


def _neftune_hook(alpha: float) -> Callable[..., Any]:
    """NEFTune (Jain et al., 2023): uniform noise of scale α/√(L·d) on the input embeddings."""
    import torch

    def hook(module: Any, args: Any, output: Any) -> Any:
        if module.training and alpha > 0:
            scale = alpha / math.sqrt(output.size(1) * output.size(2))
            output = output + torch.zeros_like(output).uniform_(-scale, scale)
        return output

    return hook


def _seed(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _target_modules(spec: str) -> str | list[str]:
    if spec == "all-linear":
        return spec
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise EmoscopeError("target_modules is empty; expected 'all-linear' or module names")
    return names


def _lora_model(config: SFTConfig) -> tuple[Any, Any, Any]:
    """The base model of ``config`` with fresh LoRA adapters attached: tokenizer, model, device."""
    from peft import LoraConfig, get_peft_model

    from emoscope.models import load_causal_lm

    loaded = load_causal_lm(
        config.base_model,
        device=config.device,
        dtype=config.dtype,
        load_in_4bit=config.load_in_4bit,
    )
    tokenizer, model, device = loaded.tokenizer, loaded.model, loaded.device
    if config.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing
        )
    else:
        model.to(device)
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=_target_modules(config.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        model = get_peft_model(model, lora)
    except ValueError as e:
        raise EmoscopeError(f"cannot attach LoRA adapters: {e}") from e
    return tokenizer, model, device


def train_lora(
    examples: Sequence[SFTExample],
    config: SFTConfig,
    out_dir: str | Path,
    *,
    progress: Callable[[str], None] | None = None,
    prompt_settings: dict[str, Any] | None = None,
    held_out: Sequence[SFTExample] | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_steps: int = 0,
) -> dict[str, Any]:
    """Fine-tune a LoRA adapter on ``examples`` in curriculum order and save it to ``out_dir``.

    Returns the training log (also written to ``emoscope_sft.json``): per-epoch item counts,
    mean losses, seconds and items per second, the mean answer loss on a probe of up to 64
    items before and after training, and timings. With ``held_out`` items, their mean answer
    loss is logged after every epoch (``held_out_loss``; before training as
    ``held_out_loss_before``). With ``checkpoint_dir``, the adapter, optimiser and scheduler
    are saved there after every epoch, and a rerun resumes after the last saved epoch (the
    curriculum order is deterministic; the NEFTune noise after a resume is not the same draw).
    ``checkpoint_steps`` > 0 also saves every that many optimiser steps inside an epoch, and a
    rerun continues that epoch at the next micro-batch (its loss and seconds carried over), so
    a run cut mid-epoch on a slow machine loses at most that many steps.
    """
    import torch
    from transformers import get_scheduler

    from emoscope.curriculum import CurriculumConfig

    config.check()
    if not examples:
        raise EmoscopeError("no training examples")
    _seed(config.seed)
    t0 = time.perf_counter()
    from emoscope.models import autocast

    tokenizer, model, device = _lora_model(config)
    pad_id = int(tokenizer.pad_token_id)

    encoded: list[tuple[list[int], list[int]]] = []
    truncated = 0
    for ex in examples:
        ids, labels, cut = encode_example(tokenizer, ex.messages, ex.response, config.max_seq_len)
        encoded.append((ids, labels))
        truncated += int(cut)
    if truncated:
        _say(progress, f"{truncated} prompts were cut to max_seq_len={config.max_seq_len}")
    probe = encoded[: min(64, len(encoded))]
    held = [
        encode_example(tokenizer, ex.messages, ex.response, config.max_seq_len)[:2]
        for ex in held_out or ()
    ]
    with autocast(config.bf16_autocast, device):
        loss_before = response_loss(model, probe, pad_id)
        held_before = response_loss(model, held, pad_id) if held else None
    _say(progress, f"answer loss before training: {loss_before:.4f}")

    curriculum = CurriculumConfig(
        strategy=config.curriculum,
        n_buckets=config.n_buckets,
        epochs_per_stage=config.epochs_per_stage,
    )
    schedule = curriculum.epochs([ex.difficulty for ex in examples], config.epochs, config.seed)
    per_step = config.batch_size * config.grad_accum
    total_steps = sum(math.ceil(len(items) / per_step) for items in schedule)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    try:
        sched = get_scheduler(
            config.scheduler,
            optim,
            num_warmup_steps=math.ceil(config.warmup_ratio * total_steps),
            num_training_steps=total_steps,
        )
    except ValueError as e:
        raise EmoscopeError(f"unknown scheduler {config.scheduler!r}: {e}") from e
    hook = model.get_input_embeddings().register_forward_hook(_neftune_hook(config.neftune_alpha))

    epochs_log: list[dict[str, Any]] = []
    step = 0
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    done = _load_checkpoint(ckpt, model, optim, sched) if ckpt is not None else None
    if done is not None:
        epochs_log, step = list(done["epochs"]), int(done["step"])
        loss_before, held_before = done["loss_before"], done["held_out_loss_before"]
        where = f"epoch {len(epochs_log)}"
        if done.get("partial"):
            where += f" and micro-batch {done['partial']['micro']} of epoch {len(epochs_log) + 1}"
        _say(progress, f"resuming after {where} from {ckpt}")

    def save(partial: dict[str, Any] | None) -> None:
        """A checkpoint after the finished epochs and, inside an epoch, where it stands."""
        assert ckpt is not None
        state = {
            "epochs": epochs_log,
            "step": step,
            "loss_before": loss_before,
            "held_out_loss_before": held_before,
        }
        _save_checkpoint(ckpt, model, optim, sched, {**state, "partial": partial})

    model.train()
    try:
        for epoch, items in enumerate(schedule, 1):
            if epoch <= len(epochs_log):
                continue
            partial = (done or {}).get("partial") or {}
            if partial.get("epoch") != epoch:
                partial = {}
            elif "rng" in partial:
                torch.set_rng_state(partial["rng"])
            t_epoch = time.perf_counter() - float(partial.get("seconds", 0.0))
            losses: list[float] = list(partial.get("losses", []))
            micro = _micro_batches(
                items, [len(encoded[i][0]) for i in items], config.batch_size, config.length_group
            )
            for m, chunk in enumerate(micro):
                if m < int(partial.get("micro", 0)):
                    continue
                batch = _collate([encoded[i] for i in chunk], pad_id)
                batch = {k: v.to(device) for k, v in batch.items()}
                with autocast(config.bf16_autocast, device):
                    loss = answer_loss(model, batch)
                (loss / config.grad_accum).backward()
                losses.append(float(loss.detach()))
                if (m + 1) % config.grad_accum == 0 or m == len(micro) - 1:
                    torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                    optim.step()
                    sched.step()
                    optim.zero_grad(set_to_none=True)
                    step += 1
                    if (
                        ckpt is not None
                        and checkpoint_steps > 0
                        and step % checkpoint_steps == 0
                        and m < len(micro) - 1
                    ):
                        save(
                            {
                                "epoch": epoch,
                                "micro": m + 1,
                                "losses": losses,
                                "seconds": time.perf_counter() - t_epoch,
                                "rng": torch.get_rng_state(),
                            }
                        )
            mean = sum(losses) / len(losses)
            seconds = time.perf_counter() - t_epoch
            entry: dict[str, Any] = {
                "epoch": epoch,
                "items": len(items),
                "mean_loss": mean,
                "lr": float(sched.get_last_lr()[0]),
                "seconds": seconds,
                "examples_per_second": len(items) / seconds if seconds > 0 else None,
            }
            if held:
                with autocast(config.bf16_autocast, device):
                    entry["held_out_loss"] = response_loss(model, held, pad_id)
            epochs_log.append(entry)
            _say(progress, f"epoch {epoch}/{len(schedule)}: {len(items)} items, loss {mean:.4f}")
            if ckpt is not None:
                save(None)
    finally:
        hook.remove()
    with autocast(config.bf16_autocast, device):
        loss_after = response_loss(model, probe, pad_id)
    _say(progress, f"answer loss after training: {loss_after:.4f}")

    base = config.base_model
    if Path(base).is_dir():
        base = str(Path(base).resolve())
    log = {
        "n_examples": len(examples),
        "truncated": truncated,
        "optimizer_steps": step,
        "epochs": epochs_log,
        "probe_items": len(probe),
        "held_out_items": len(held),
        "held_out_loss_before": held_before,
        "loss_before": loss_before,
        "loss_after": loss_after,
        "seconds": time.perf_counter() - t0,
    }
    _save_adapter(model, tokenizer, out_dir, base, config, log, prompt_settings or {})
    return log


_CKPT_STATE = "trainer_state.pt"


def _save_checkpoint(
    folder: Path, model: Any, optim: Any, sched: Any, state: dict[str, Any]
) -> None:
    """The adapter weights, optimiser, scheduler and log after an epoch; the state file is
    written last (atomically), so a cut save is never read as complete."""
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder / "adapter")
    tmp = folder / (_CKPT_STATE + ".tmp")
    torch.save({"optim": optim.state_dict(), "sched": sched.state_dict(), **state}, tmp)
    os.replace(tmp, folder / _CKPT_STATE)


def _load_checkpoint(folder: Path, model: Any, optim: Any, sched: Any) -> dict[str, Any] | None:
    """Restore a :func:`_save_checkpoint` folder into ``model``/``optim``/``sched``; its state
    (``None`` when there is no complete checkpoint)."""
    if not (folder / _CKPT_STATE).is_file():
        return None
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = torch.load(folder / _CKPT_STATE, weights_only=False)
    weights = load_file(str(folder / "adapter" / "adapter_model.safetensors"))
    set_peft_model_state_dict(model, weights)
    optim.load_state_dict(state.pop("optim"))
    sched.load_state_dict(state.pop("sched"))
    return dict(state)


def _save_adapter(
    model: Any,
    tokenizer: Any,
    out_dir: str | Path,
    base: str,
    config: SFTConfig,
    log: dict[str, Any],
    prompt_settings: dict[str, Any],
) -> None:
    """Write the adapter into a temporary folder beside ``out_dir``, then move each file in."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.peft_config["default"].base_model_name_or_path = base
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for f in tmp.iterdir():
            os.replace(f, out / f.name)
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)
    write_json(
        out / "emoscope_sft.json",
        {
            "format": SFT_FORMAT,
            "version": 1,
            "emoscope_version": __version__,
            "base_model": base,
            "config": asdict(config),
            "prompt": prompt_settings,
            "log": log,
        },
    )


def train_sft(
    config: SFTConfig,
    out_dir: str | Path,
    *,
    cue_backend: ChatBackend | None = None,
    store: Any = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Build the PRC training prompts of ``config`` and fine-tune a LoRA adapter on them."""
    config.check()
    examples = build_examples(config, cue_backend=cue_backend, store=store, progress=progress)
    _say(progress, f"{len(examples)} training prompts")
    from emoscope.datasets import DATASETS

    info = DATASETS.get(config.dataset.strip().lower())
    tax_name = config.taxonomy or (info.taxonomy if info is not None else None)
    template = config.template or (tax_name if tax_name in ("meld", "emorynlp") else "generic")
    settings = {
        "variant": config.prompt,
        "template": template,
        "taxonomy": tax_name,
        "retrieve": config.retrieve,
        "window": config.window,
        "future": config.future,
        "cue_window": config.cue_window,
    }
    return train_lora(examples, config, out_dir, progress=progress, prompt_settings=settings)

"""Training emoscope's encoder model: multi-task fine-tuning, model selection and calibration.

One model is trained on several datasets at once, each feeding its own head: conversation emotion
(MELD, EmoryNLP) through the dialogue context model, single-text multi-label emotion (GoEmotions)
and VAD regression (EmoBank). Batches are task-homogeneous and shuffled together each epoch.

Because the lower encoder layers are frozen, their outputs are computed once per distinct text and
cached; each step runs only the upper layers, the context model and the heads. (Dropout therefore
never applies inside the frozen layers, which matches inference.)

After training, the best epoch by mean dev score is kept, its weights are rounded as the saved
file stores them (int8 rows for large matrices, float16 otherwise), single-label heads get a
temperature fitted on dev NLL (Guo et al., 2017) and the multi-label head gets per-label
thresholds maximising dev F1.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from emoscope._io import check_writable, write_json
from emoscope._version import __version__
from emoscope.curriculum import BucketSchedule, CurriculumConfig
from emoscope.datasets import load_dataset, read_labelled_file
from emoscope.datasets.base import Dataset
from emoscope.errors import EmoscopeError
from emoscope.labels import get_taxonomy
from emoscope.metrics import (
    brier_score,
    classification_report,
    expected_calibration_error,
    pearson_r,
)
from emoscope.recognizers.encoder_model import (
    CONTEXT_INPUTS,
    EmotionEncoder,
    EncoderConfig,
    HeadConfig,
    Turn,
    build_model,
    fit_temperature,
    input_token_ids,
    pad_batch,
    pool_mask,
    save_model,
    storage_round,
)

__all__ = ["ARCHITECTURE", "TrainConfig", "refit_vad_head", "train"]

RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)

_log = logging.getLogger(__name__)

# Built-in tasks: dataset name -> (head kind, taxonomy or None for VAD).
BUILTIN_TASKS: dict[str, tuple[str, str | None]] = {
    "meld": ("single", "meld"),
    "emorynlp": ("single", "emorynlp"),
    "goemotions": ("multi", "goemotions"),
    "emobank": ("vad", None),
}


_ENCODER_DEFAULTS = EncoderConfig()
ARCHITECTURE = (
    "base_model",
    "n_frozen_layers",
    "max_seq_length",
    "max_turns",
    "context_layers",
    "context_input",
    "sequence_length",
)
"""The :class:`TrainConfig` fields that are :class:`EncoderConfig` fields (same name, same
default): what the trained model is built from."""


@dataclass
class TrainConfig:
    """Settings of a training run (all recorded in the saved model's config).

    The fields named in :data:`ARCHITECTURE` go to the model's :class:`EncoderConfig`
    (:meth:`encoder_config`) and default to its defaults; the others steer the training.
    """

    tasks: tuple[str, ...] = ("meld", "emorynlp", "goemotions", "emobank")
    dataset_file: str | None = None
    dev_file: str | None = None
    taxonomy: str | None = None
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-4
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.06
    # The architecture (ARCHITECTURE): defaults are EncoderConfig's.
    n_frozen_layers: int = _ENCODER_DEFAULTS.n_frozen_layers
    max_seq_length: int = _ENCODER_DEFAULTS.max_seq_length
    max_turns: int = _ENCODER_DEFAULTS.max_turns
    context_layers: int = _ENCODER_DEFAULTS.context_layers
    context_input: str = _ENCODER_DEFAULTS.context_input
    sequence_length: int = _ENCODER_DEFAULTS.sequence_length
    seed: int = 13
    limit: int | None = None
    data_root: str | None = None
    base_model: str = _ENCODER_DEFAULTS.base_model
    default_taxonomy: str | None = None
    task_weights: dict[str, float] = field(default_factory=dict)
    # At most this many training units of a task per epoch (a fresh random subset each epoch).
    max_per_epoch: dict[str, int] = field(default_factory=dict)
    # Easy-to-hard curriculum over the dialogue units of conversation tasks (MELD, EmoryNLP):
    # "none", "emotion-shift" or "speaker-weighted" (emoscope.curriculum; PRC-Emo's schedule of
    # 2 buckets, one added per epoch, then the full data). Text-only tasks are unaffected.
    curriculum: str = "none"
    # Multi-label tasks trained on soft targets: each text's gold label set as a uniform
    # distribution, KL divergence to one softmax, instead of independent sigmoids.
    soft_targets: tuple[str, ...] = ()
    # Run the encoder under CPU bfloat16 autocast (float32 weights, bfloat16 matrix products;
    # Kalamkar et al., 2019): about twice as fast on a CPU with AMX, less elsewhere.
    bf16: bool = False

    def encoder_config(self) -> EncoderConfig:
        """The architecture of the model this run trains (heads are added by :func:`train`)."""
        return EncoderConfig(**{name: getattr(self, name) for name in ARCHITECTURE})


@dataclass
class _Unit:
    """One training unit: a dialogue window or a single text, with its targets."""

    texts: list[int]
    speakers: list[int]
    targets: list[Any]


@dataclass
class _Task:
    head: HeadConfig
    train: list[_Unit]
    dev: list[_Unit]
    dev_size: int = 0
    # Set for conversation tasks under a curriculum: which train units each epoch uses.
    schedule: BucketSchedule | None = None
    difficulty: list[float] | None = None


class _TextCache:
    """Distinct encoder inputs and their cached lower-layer states, built like inference does.

    An input is a target with the turns before it that the model reads (:func:`input_token_ids`):
    with ``context_input="vector"`` just its text, so each distinct text is encoded once.
    """

    def __init__(self, config: EncoderConfig) -> None:
        self.config = config
        self.index: dict[tuple[Turn, ...], int] = {}
        self.keys: list[tuple[Turn, ...]] = []
        self.chunks: list[list[torch.Tensor]] = []
        self.starts: list[list[int]] = []

    def add(self, turns: Sequence[Turn]) -> int:
        """The cache row of a target given as its turns (past turns, then the target)."""
        key = ((None, turns[-1][1]),) if self.config.context_input == "vector" else tuple(turns)
        if key not in self.index:
            self.index[key] = len(self.keys)
            self.keys.append(key)
        return self.index[key]

    @torch.inference_mode()
    def fill(self, model: EmotionEncoder, tokenizer: Any, batch_size: int = 128) -> None:
        chunks, owners, starts = input_token_ids(self.keys, tokenizer, model.config)
        self.chunks = [[] for _ in self.keys]
        self.starts = [[] for _ in self.keys]
        order = sorted(range(len(chunks)), key=lambda i: len(chunks[i]))
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            input_ids, mask = pad_batch([chunks[i] for i in idx], tokenizer.pad_token_id)
            h = model.lower(input_ids, mask).to(torch.float16)
            for row, i in enumerate(idx):
                self.chunks[owners[i]].append(h[row, : len(chunks[i])].clone())
                self.starts[owners[i]].append(starts[i])

    def vectors(self, model: EmotionEncoder, text_ids: Sequence[int]) -> torch.Tensor:
        """Pooled upper-layer vectors of the given inputs (with gradients when training)."""
        states: list[torch.Tensor] = []
        owners: list[int] = []
        starts: list[int] = []
        for k, t in enumerate(text_ids):
            states.extend(self.chunks[t])
            starts.extend(self.starts[t])
            owners.extend([k] * len(self.chunks[t]))
        if self.config.context_input == "vector":
            return self._pooled(model, states, owners, None, len(text_ids))
        # Sequences vary from a few tokens to sequence_length: run them in length-sorted groups
        # so that short ones are not padded to the longest of the batch.
        order = sorted(range(len(states)), key=lambda i: states[i].shape[0])
        parts = [order[g : g + 16] for g in range(0, len(order), 16)]
        sums = [
            self._pooled(
                model,
                [states[i] for i in p],
                list(range(len(p))),
                [starts[i] for i in p],
                len(p),
                average=False,
            )
            for p in parts
        ]
        dim = sums[0][0].shape[-1]
        total = torch.zeros(len(text_ids), dim)
        count = torch.zeros(len(text_ids), 1)
        for p, (s, c) in zip(parts, sums, strict=True):
            own = torch.tensor([owners[i] for i in p])
            total = total.index_add(0, own, s)
            count = count.index_add(0, own, c)
        return total / count.clamp_min(1.0)

    @staticmethod
    def _pooled(
        model: EmotionEncoder,
        states: list[torch.Tensor],
        owners: list[int],
        starts: list[int] | None,
        n: int,
        average: bool = True,
    ) -> Any:
        width = max(s.shape[0] for s in states)
        h = torch.zeros(len(states), width, states[0].shape[1])
        mask = torch.zeros(len(states), width, dtype=torch.long)
        for i, s in enumerate(states):
            h[i, : s.shape[0]] = s.float()
            mask[i, : s.shape[0]] = 1
        out = model.upper(h, mask).float()  # pooled in float32 under bfloat16 autocast too
        pooled = mask if starts is None else pool_mask(mask, starts)
        if average:
            return model.pool(out, pooled, torch.tensor(owners), n)
        m = pooled.to(out.dtype)[..., None]
        return (out * m).sum(1), m.sum(1)


def _speaker_numbers(speakers: Sequence[str | None], n: int) -> list[int]:
    seen: dict[str, int] = {}
    out = []
    for s in speakers:
        if s is None:
            out.append(0)
        else:
            out.append(seen.setdefault(s, len(seen) % n + 1))
    return out


def _units(ds: Dataset, head: HeadConfig, cache: _TextCache, cfg: EncoderConfig) -> list[_Unit]:
    """Turn a dataset into units; dialogues longer than ``max_turns`` become several windows."""

    def target(e: Any) -> Any:
        if head.kind == "vad":
            return e.vad
        if head.kind == "multi":
            return [head.labels.index(lab) for lab in e.labels]
        return head.labels.index(e.labels[0])

    units: list[_Unit] = []
    if ds.dialogues is not None:
        pos = 0
        for d in ds.dialogues:
            exs = ds.examples[pos : pos + len(d)]
            pos += len(d)
            for s in range(0, len(d), cfg.max_turns):
                part = d.utterances[s : s + cfg.max_turns]
                turns = [(u.speaker, u.text) for u in part]
                units.append(
                    _Unit(
                        [cache.add(turns[: k + 1]) for k in range(len(part))],
                        _speaker_numbers([u.speaker for u in part], cfg.n_speakers),
                        [target(e) for e in exs[s : s + cfg.max_turns]],
                    )
                )
    else:
        units = [_Unit([cache.add([(None, e.text)])], [0], [target(e)]) for e in ds.examples]
    return units


def _load_tasks(tc: TrainConfig, cache: _TextCache, cfg: EncoderConfig) -> list[_Task]:
    tasks: list[_Task] = []
    specs: list[tuple[str, str, str | None, Dataset, Dataset]] = []
    if tc.dataset_file:
        if not tc.taxonomy:
            raise EmoscopeError("--taxonomy is required with --dataset FILE")
        train_ds, dev_ds = _user_datasets(tc)
        tax = get_taxonomy(tc.taxonomy)
        specs.append(
            (tax.name, "multi" if tax.multi_label else "single", tax.name, train_ds, dev_ds)
        )
    for name in tc.tasks:
        if name not in BUILTIN_TASKS:
            raise EmoscopeError(
                f"unknown training task {name!r}; expected one of: {', '.join(BUILTIN_TASKS)}"
            )
        kind, tax_name = BUILTIN_TASKS[name]
        train_ds = load_dataset(name, "train", tc.data_root).limit(tc.limit)
        dev_ds = load_dataset(name, "dev", tc.data_root).limit(tc.limit)
        specs.append((name, kind, tax_name, train_ds, dev_ds))
    for name, kind, tax_name, train_ds, dev_ds in specs:
        labels = (
            list(get_taxonomy(tax_name).labels) if tax_name else ["valence", "arousal", "dominance"]
        )
        head = HeadConfig(name, kind, tax_name, labels)
        if name in tc.soft_targets:
            if kind != "multi":
                raise EmoscopeError(
                    f"soft targets need a multi-label task; {name!r} has one label per example"
                )
            head.soft_targets = True
        tasks.append(
            _Task(
                head,
                _units(train_ds, head, cache, cfg),
                _units(dev_ds, head, cache, cfg),
                len(dev_ds),
            )
        )
    if not tasks:
        raise EmoscopeError("nothing to train on: give --task names and/or --dataset FILE")
    unknown = sorted(set(tc.soft_targets) - {t.head.name for t in tasks})
    if unknown:
        raise EmoscopeError(
            f"soft targets asked for {', '.join(unknown)}, which is not among the tasks trained "
            f"({', '.join(t.head.name for t in tasks)})"
        )
    return tasks


def _user_datasets(tc: TrainConfig) -> tuple[Dataset, Dataset]:
    """Read a user's training file (and dev file, or hold out every 10th unit)."""
    assert tc.dataset_file is not None and tc.taxonomy is not None

    ds = read_labelled_file(tc.dataset_file, tc.taxonomy)
    if tc.dev_file:
        return ds, read_labelled_file(tc.dev_file, tc.taxonomy)
    units = len(ds.dialogues) if ds.dialogues is not None else len(ds.examples)
    if units < 2:  # every 10th unit, starting with the first, is held out for dev
        what = "dialogues" if ds.dialogues is not None else "rows"
        raise EmoscopeError(
            f"{tc.dataset_file}: too few {what} to train: {units} (at least 2: one to train on "
            "and one held out for dev; or give a dev file)"
        )
    from dataclasses import replace

    if ds.dialogues is not None:
        dev_d = ds.dialogues[::10]
        train_d = [d for i, d in enumerate(ds.dialogues) if i % 10]
        dev_ids = {id(d) for d in dev_d}
        return (
            replace(
                ds,
                dialogues=train_d,
                examples=[e for e in ds.examples if id(e.dialogue) not in dev_ids],
            ),
            replace(
                ds, dialogues=dev_d, examples=[e for e in ds.examples if id(e.dialogue) in dev_ids]
            ),
        )
    return (
        replace(ds, examples=[e for i, e in enumerate(ds.examples) if i % 10]),
        replace(ds, examples=ds.examples[::10]),
    )


def _batches(units: list[_Unit], size: int, rng: random.Random | None) -> list[list[_Unit]]:
    """Pack units into batches of about ``size`` utterances (shuffled when ``rng`` is given)."""
    order = list(units)
    if rng is not None:
        rng.shuffle(order)
    batches: list[list[_Unit]] = []
    cur: list[_Unit] = []
    count = 0
    for u in order:
        cur.append(u)
        count += len(u.texts)
        if count >= size:
            batches.append(cur)
            cur, count = [], 0
    if cur:
        batches.append(cur)
    return batches


def _curriculum(tasks: list[_Task], strategy: str) -> None:
    """Attach a bucket schedule to every single-label conversation task (dialogue units).

    A unit (a dialogue window of up to ``max_turns`` turns) is scored from its gold labels and
    speaker numbers; speakers past ``n_speakers`` share numbers, as they do for the model.
    """
    cc = CurriculumConfig(strategy=strategy)  # validates the name
    if strategy == "none":
        return
    for t in tasks:
        if t.head.kind != "single" or t.head.taxonomy is None:
            continue
        if not any(len(u.texts) > 1 for u in t.train):
            continue  # standalone texts: no dialogue, no shifts to order by
        t.difficulty = [cc.difficulty(u.targets, u.speakers, t.head.taxonomy) for u in t.train]
        t.schedule = cc.schedule(t.difficulty)


def _epoch_units(task: _Task, tc: TrainConfig, rng: random.Random, epoch: int = 0) -> list[_Unit]:
    units = (
        task.train
        if task.schedule is None
        else [task.train[i] for i in task.schedule.visible(epoch)]
    )
    cap = tc.max_per_epoch.get(task.head.name)
    if cap is None or cap >= len(units):
        return units
    return rng.sample(units, cap)


def _curriculum_stats(task: _Task, epoch: int) -> dict[str, Any]:
    assert task.schedule is not None and task.difficulty is not None
    seen = task.schedule.visible(epoch)
    return {"units": len(seen), "max_difficulty": max(task.difficulty[i] for i in seen)}


def _forward(
    model: EmotionEncoder, cache: _TextCache, batch: list[_Unit], head: str
) -> torch.Tensor:
    # float(): under bfloat16 autocast the losses are taken in float32
    return model.head_logits(_features(model, cache, batch), head).float()


def _features(model: EmotionEncoder, cache: _TextCache, batch: list[_Unit]) -> torch.Tensor:
    """The ``[utterance; context]`` features of every utterance of a batch, in order."""
    text_ids = sorted({t for u in batch for t in u.texts})
    where = {t: i for i, t in enumerate(text_ids)}
    vectors = cache.vectors(model, text_ids)
    windows, speakers, outputs = [], [], []
    rows: list[int] = []
    offset = 0
    for u in batch:
        rows.extend(where[t] for t in u.texts)
        windows.append(list(range(offset, offset + len(u.texts))))
        offset += len(u.texts)
        speakers.append(u.speakers)
        outputs.append(len(u.texts))
    return model.contextualise(vectors[rows], windows, speakers, outputs)


def _loss(head: HeadConfig, out: torch.Tensor, batch: list[_Unit]) -> torch.Tensor:
    targets = [t for u in batch for t in u.targets]
    if head.kind == "single":
        return nn.functional.cross_entropy(out, torch.tensor(targets))
    if head.kind == "multi":
        y = torch.zeros_like(out)
        for i, labs in enumerate(targets):
            y[i, labs] = 1.0
        if head.soft_targets:
            dist = y / y.sum(1, keepdim=True).clamp_min(1.0)
            log_p = nn.functional.log_softmax(out, -1)
            return nn.functional.kl_div(log_p, dist, reduction="batchmean")
        return nn.functional.binary_cross_entropy_with_logits(out, y)
    return nn.functional.mse_loss(out, torch.tensor(targets, dtype=out.dtype))


@torch.inference_mode()
def _outputs(
    model: EmotionEncoder, cache: _TextCache, units: list[_Unit], head: str | None
) -> tuple[np.ndarray, list[Any]]:
    """Outputs of ``head`` (or the features when ``None``) for ``units``, with their targets."""
    model.eval()
    outs: list[np.ndarray] = []
    targets: list[Any] = []
    for batch in _batches(units, 256, None):
        feats = _features(model, cache, batch)
        outs.append((feats if head is None else model.head_logits(feats, head)).float().numpy())
        targets.extend(t for u in batch for t in u.targets)
    return np.concatenate(outs, 0), targets


def _dev_outputs(
    model: EmotionEncoder, cache: _TextCache, task: _Task
) -> tuple[np.ndarray, list[Any]]:
    return _outputs(model, cache, task.dev, task.head.name)


def _dev_scores(model: EmotionEncoder, cache: _TextCache, tasks: list[_Task]) -> dict[str, Any]:
    return {t.head.name: _score(t.head, *_dev_outputs(model, cache, t)) for t in tasks}


def _mean_score(dev: dict[str, Any]) -> float:
    """The model-selection score: the mean over heads of their dev scores."""
    return float(np.mean([d["score"] for d in dev.values()]))


def _score(head: HeadConfig, out: np.ndarray, targets: list[Any]) -> dict[str, float]:
    """Dev metrics of one head from raw outputs."""
    if head.kind == "vad":
        y = np.asarray(targets)
        rs = [pearson_r(out[:, i], y[:, i]) for i in range(3)]
        return {
            "r_valence": rs[0],
            "r_arousal": rs[1],
            "r_dominance": rs[2],
            "score": float(np.mean(rs)),
        }
    if head.kind == "multi":
        th = np.asarray(head.thresholds or [0.5] * len(head.labels))
        probs = head.probabilities(torch.from_numpy(out)).numpy()
        pred = [
            [head.labels[j] for j in np.flatnonzero(p >= th)] or [head.labels[int(p.argmax())]]
            for p in probs
        ]
        gold = [[head.labels[j] for j in t] for t in targets]
        rep = classification_report(gold, pred, head.labels)
        return {"macro_f1": rep["macro_f1"], "score": rep["macro_f1"]}
    y = np.asarray(targets)
    z = out / head.temperature
    probs = np.exp(z - z.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    pred = probs.argmax(1)
    rep = classification_report(
        [head.labels[i] for i in y], [head.labels[i] for i in pred], head.labels
    )
    conf = probs.max(1)
    return {
        "weighted_f1": rep["weighted_f1"],
        "macro_f1": rep["macro_f1"],
        "accuracy": rep["accuracy"],
        "ece": expected_calibration_error(conf, pred == y),
        "brier": brier_score(probs, y),
        "score": rep["weighted_f1"],
    }


def _all_features(
    model: EmotionEncoder, cache: _TextCache, units: list[_Unit]
) -> tuple[np.ndarray, np.ndarray]:
    feats, targets = _outputs(model, cache, units, None)
    return feats.astype(np.float64), np.asarray(targets, dtype=np.float64)


def refit_vad_head(
    model: EmotionEncoder, cache: _TextCache, task: _Task, alphas: Sequence[float] = RIDGE_ALPHAS
) -> dict[str, Any]:
    """Replace the VAD head by the ridge regression of the targets on the final features.

    The head trained jointly with the classification heads sees tiny MSE gradients next to the
    cross-entropy of the other tasks; a closed-form ridge fit on the trained features is the best
    linear head for them. Each output (valence, arousal, dominance) gets its own ridge penalty,
    the one with the best dev Pearson r. Kept only if it improves the mean dev score. Returns dev
    scores before and after and the chosen penalties.
    """
    x, y = _all_features(model, cache, task.train)
    xd, yd = _all_features(model, cache, task.dev)
    head = cast(nn.Linear, model.heads[task.head.name])
    before = _score(
        task.head, head(torch.from_numpy(xd).float()).detach().float().numpy(), list(yd)
    )
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    gram, xty = xc.T @ xc, xc.T @ yc
    w = np.zeros((x.shape[1], y.shape[1]))
    chosen: list[float] = []
    for j in range(y.shape[1]):
        best: tuple[float, float] | None = None
        for alpha in alphas:
            wj = np.linalg.solve(gram + alpha * np.eye(len(gram)), xty[:, j])
            r = pearson_r((xd - mx) @ wj, yd[:, j])
            if best is None or r > best[0]:
                best = (r, alpha)
                w[:, j] = wj
        assert best is not None
        chosen.append(best[1])
    fitted = _score(task.head, (xd - mx) @ w + my, list(yd))
    kept = fitted["score"] > before["score"]
    if kept:
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(w.T).float())
            head.bias.copy_(torch.from_numpy(my - mx @ w).float())
    after = _score(task.head, head(torch.from_numpy(xd).float()).detach().float().numpy(), list(yd))
    return {"before": before, "after": after, "alpha": chosen, "kept": kept}


def _tune_thresholds(probs: np.ndarray, targets: list[list[int]], n: int) -> list[float]:
    """Per-label threshold maximising dev F1 of that label (grid 0.05..0.95)."""
    y = np.zeros_like(probs, dtype=bool)
    for i, labs in enumerate(targets):
        y[i, labs] = True
    grid = np.arange(0.05, 0.96, 0.05)
    best = []
    for j in range(n):
        f1s = []
        for t in grid:
            p = probs[:, j] >= t
            tp = float((p & y[:, j]).sum())
            denom = float(p.sum() + y[:, j].sum())
            f1s.append(2 * tp / denom if denom else 0.0)
        best.append(round(float(grid[int(np.argmax(f1s))]), 2))
    return best


def _seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(
    tc: TrainConfig,
    out_dir: str | Path,
    *,
    progress: Callable[[str], None] | None = None,
    model_factory: Callable[[EncoderConfig], tuple[EmotionEncoder, Any]] = build_model,
) -> dict[str, Any]:
    """Train, select, calibrate and save a model to ``out_dir``; return the training log.

    ``model_factory`` builds the untrained model from its config (tests pass a tiny one).
    """
    if tc.context_input not in CONTEXT_INPUTS:
        raise EmoscopeError(
            f"unknown context input {tc.context_input!r}; expected one of: "
            f"{', '.join(CONTEXT_INPUTS)}"
        )
    check_writable(out_dir, folder=True)  # before the work, not after it
    # No weight cache: autocast would otherwise keep the bfloat16 copies of the weights made at
    # the first step for the whole run, and the forward passes would never see an update.
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=tc.bf16, cache_enabled=False):
        return _train(tc, out_dir, progress, model_factory)


def _train(
    tc: TrainConfig,
    out_dir: str | Path,
    progress: Callable[[str], None] | None,
    model_factory: Callable[[EncoderConfig], tuple[EmotionEncoder, Any]],
) -> dict[str, Any]:
    say = progress or _log.info
    _seed(tc.seed)
    t0 = time.perf_counter()
    heads_cfg = tc.encoder_config()
    cache = _TextCache(heads_cfg)
    tasks = _load_tasks(tc, cache, heads_cfg)
    _curriculum(tasks, tc.curriculum)
    heads_cfg.heads = [t.head for t in tasks]
    label_heads = [t.head for t in tasks if t.head.taxonomy]
    if not label_heads:
        raise EmoscopeError("at least one labelled task is needed (a VAD head alone has no labels)")
    heads_cfg.default_taxonomy = tc.default_taxonomy or str(label_heads[0].taxonomy)
    _seed(tc.seed)
    model, tokenizer = model_factory(heads_cfg)
    say(f"caching lower-layer states of {len(cache.keys)} distinct inputs")
    cache.fill(model, tokenizer)
    t_cache = time.perf_counter() - t0

    trainable = [p for p in model.parameters() if p.requires_grad]
    context_params = [] if model.context is None else list(model.context.parameters())
    head_params = {id(p) for p in [*model.heads.parameters(), *context_params]}
    groups = [
        {"params": [p for p in trainable if id(p) not in head_params], "lr": tc.lr},
        {"params": [p for p in trainable if id(p) in head_params], "lr": tc.head_lr},
    ]
    opt = torch.optim.AdamW(groups, weight_decay=tc.weight_decay)
    rng = random.Random(tc.seed)
    total = max(
        1,
        sum(
            len(_batches(_epoch_units(t, tc, random.Random(0), e), tc.batch_size, None))
            for e in range(tc.epochs)
            for t in tasks
        ),
    )
    warm = max(1, int(tc.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    log: dict[str, Any] = {"epochs": [], "config": asdict(tc), "emoscope_version": __version__}
    best_score, best_state = -np.inf, None
    for epoch in range(tc.epochs):
        model.train()
        work = [
            (t, b)
            for t in tasks
            for b in _batches(_epoch_units(t, tc, rng, epoch), tc.batch_size, rng)
        ]
        rng.shuffle(work)
        te = time.perf_counter()
        losses: dict[str, list[float]] = {t.head.name: [] for t in tasks}
        for step, (task, batch) in enumerate(work):
            out = _forward(model, cache, batch, task.head.name)
            loss = _loss(task.head, out, batch) * tc.task_weights.get(task.head.name, 1.0)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            sched.step()
            losses[task.head.name].append(float(loss.detach()))
            if step % 50 == 0:
                say(
                    f"epoch {epoch + 1} step {step}/{len(work)} loss {float(loss.detach()):.4f} "
                    f"({time.perf_counter() - te:.0f}s)"
                )
        dev = _dev_scores(model, cache, tasks)
        score = _mean_score(dev)
        entry = {
            "epoch": epoch + 1,
            "seconds": round(time.perf_counter() - te, 1),
            "train_loss": {k: float(np.mean(v)) if v else None for k, v in losses.items()},
            "dev": dev,
            "dev_score": score,
        }
        if tc.curriculum != "none":
            entry["curriculum"] = {
                t.head.name: _curriculum_stats(t, epoch) for t in tasks if t.schedule is not None
            }
        log["epochs"].append(entry)
        say(f"epoch {epoch + 1}: dev score {score:.4f} {dev}")
        if score > best_score:
            best_score, best_state = score, copy.deepcopy(model.trained_state_dict())
    assert best_state is not None
    model.load_state_dict(storage_round(best_state), strict=False)
    log["storage"] = {
        "dev_score_float32": best_score,  # measured on these weights at the end of their epoch
        "dev_score_stored": _mean_score(_dev_scores(model, cache, tasks)),
    }
    log["vad_refit"] = {
        t.head.name: refit_vad_head(model, cache, t) for t in tasks if t.head.kind == "vad"
    }
    log["calibration"] = _calibrate(model, cache, tasks)
    log["seconds"] = {"cache": round(t_cache, 1), "total": round(time.perf_counter() - t0, 1)}
    model.config.training = {
        "tasks": [t.head.name for t in tasks],
        "train_sizes": {t.head.name: sum(len(u.targets) for u in t.train) for t in tasks},
        "best_epoch": int(np.argmax([e["dev_score"] for e in log["epochs"]]) + 1),
        "seed": tc.seed,
        "epochs": tc.epochs,
        "lr": tc.lr,
        "head_lr": tc.head_lr,
        "batch_size": tc.batch_size,
        "dataset_file": tc.dataset_file,
        "soft_targets": list(tc.soft_targets),
        "curriculum": tc.curriculum,
        "task_weights": tc.task_weights,
        "bf16": tc.bf16,
    }
    save_model(model, out_dir)
    write_json(Path(out_dir) / "training_log.json", log)
    return log


def _calibrate(model: EmotionEncoder, cache: _TextCache, tasks: list[_Task]) -> dict[str, Any]:
    """Fit temperatures / thresholds on dev; return dev metrics before and after."""
    report: dict[str, Any] = {}
    for task in tasks:
        head = task.head
        out, targets = _dev_outputs(model, cache, task)
        before = _score(head, out, targets)
        if head.kind == "single":
            head.temperature = round(fit_temperature(out, np.asarray(targets)), 4)
        elif head.kind == "multi":
            probs = head.probabilities(torch.from_numpy(out)).numpy()
            head.thresholds = _tune_thresholds(probs, targets, len(head.labels))
        after = _score(head, out, targets)
        report[head.name] = {
            "before": before,
            "after": after,
            "temperature": head.temperature,
            "thresholds": head.thresholds,
        }
    return report

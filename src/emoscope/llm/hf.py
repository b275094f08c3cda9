"""Local Hugging Face causal language models as a :class:`~emoscope.llm.base.ChatBackend`.

Prompts go through the tokenizer's chat template (with ``add_generation_prompt``), are
left-padded into batches of similar length and decoded greedily unless a temperature is given.
A LoRA adapter saved by :mod:`emoscope.llm.sft` (or any PEFT adapter) can be given as the model
itself or through ``adapter=``. 4-bit loading (bitsandbytes NF4, as in the PRC-Emo reference
setup) is used on request when bitsandbytes and a CUDA device are available.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from emoscope.errors import EmoscopeError
from emoscope.llm.base import (
    ChatBackend,
    Generation,
    Message,
    ResponseCache,
    cached_generate,
    check_request,
)
from emoscope.models import (
    _adapter_merged,
    _bnb_config,
    autocast,
    encode_prompt,
    load_causal_lm,
    render_chat,
    resolve,
)

__all__ = ["HFBackend", "render_chat", "resolve_model_and_adapter"]


def resolve_model_and_adapter(model: str, adapter: str | None = None) -> tuple[str, str | None]:
    """Split ``model`` into (base model, adapter) when it is a PEFT adapter folder.

    An adapter folder holds ``adapter_config.json`` naming its base model in
    ``base_model_name_or_path`` (see :func:`emoscope.models.resolve`).
    """
    if adapter is None and (Path(model) / "adapter_config.json").is_file():
        res = resolve(model)
        assert res.base is not None
        return res.base.name, res.adapter
    return model, adapter


class HFBackend:
    """A local transformers causal LM answering chat prompts.

    Args:
        model: a local folder or Hub id of a causal LM, or a PEFT adapter folder (its base model
            is read from ``adapter_config.json``).
        adapter: a PEFT/LoRA adapter folder to apply on top of ``model``.
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        dtype: ``"auto"`` (bfloat16 on CUDA, float32 on CPU) or a torch dtype name.
        load_in_4bit: load the weights in 4-bit NF4 (needs bitsandbytes and CUDA).
        batch_size: prompts per forward pass.
        cache: a :class:`ResponseCache` or a path to one; ``None`` disables caching.
        chat_template_kwargs: extra variables for the chat template. The default turns off the
            "thinking" mode of templates that have one (Qwen3), as the label is asked directly.
        trust_remote_code: passed to ``from_pretrained``.
    """

    name = "hf"

    def __init__(
        self,
        model: str,
        *,
        adapter: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        load_in_4bit: bool = False,
        batch_size: int = 8,
        cache: ResponseCache | str | Path | None = None,
        chat_template_kwargs: Mapping[str, Any] | None = None,
        trust_remote_code: bool = False,
        repetition_penalty: float = 1.0,
        bf16_autocast: bool = False,
    ) -> None:
        if batch_size < 1:
            raise EmoscopeError(f"batch_size must be at least 1, got {batch_size}")
        if repetition_penalty <= 0:
            raise EmoscopeError(f"repetition_penalty must be positive, got {repetition_penalty}")
        loaded = load_causal_lm(
            model,
            adapter=adapter,
            device=device,
            dtype=dtype,
            load_in_4bit=load_in_4bit,
            trust_remote_code=trust_remote_code,
        )
        res = loaded.resolved
        self.resolved = res
        self.base_model = res.base.name if res.base is not None else res.name
        self.adapter = res.adapter
        self.model = (
            self.base_model if self.adapter is None else f"{self.base_model}+{self.adapter}"
        )
        self.batch_size = batch_size
        self.repetition_penalty = float(repetition_penalty)
        self.bf16_autocast = bool(bf16_autocast)
        self.chat_template_kwargs = dict(
            {"enable_thinking": False} if chat_template_kwargs is None else chat_template_kwargs
        )
        self.cache = ResponseCache(cache) if isinstance(cache, str | Path) else cache
        self.device = loaded.device
        self.tokenizer: Any = loaded.tokenizer
        self.lm: Any = loaded.model
        self.tokenizer.padding_side = "left"
        self._stop_ids = _stop_token_ids(self.tokenizer, self.lm)

    @staticmethod
    def _bnb_config(compute_dtype: Any) -> Any:
        return _bnb_config(compute_dtype)

    def base_view(self) -> ChatBackend:
        """A backend sharing this model with the adapter switched off (itself without adapter).

        Used for the stage-1 cue prompts when a LoRA adapter was fine-tuned for the final
        prompt only: the base model writes the descriptions, no second copy is loaded.
        """
        if self.adapter is None:
            return self
        return _BaseView(self)

    def score(
        self, conversations: Sequence[Sequence[Message]], choices: Sequence[str]
    ) -> list[Any]:
        """Log-likelihood of each choice as the answer to each conversation.

        Returns one float64 array per conversation (sum of the choice's token log-probs; see
        :func:`emoscope.llm.scoring.score_prompts`), ``batch_size`` prompts per forward pass. The
        adapter, if any, is active.
        """
        from emoscope.llm.scoring import choice_token_ids, score_prompts

        convs = check_request(conversations, max_new_tokens=1, temperature=0.0)
        plain = not getattr(self.tokenizer, "chat_template", None)
        choice_ids = choice_token_ids(self.tokenizer, choices, plain=plain)
        prompts = [encode_prompt(self.tokenizer, self.render(c)) for c in convs]
        out: list[Any] = []
        for start in range(0, len(prompts), self.batch_size):
            out.extend(
                score_prompts(
                    self.lm,
                    prompts[start : start + self.batch_size],
                    choice_ids,
                    bf16=self.bf16_autocast,
                )
            )
        return out

    def render(self, conv: Sequence[Message]) -> str:
        """The exact prompt text the model sees for one conversation."""
        return render_chat(self.tokenizer, conv, chat_template_kwargs=self.chat_template_kwargs)

    def generate(
        self,
        conversations: Sequence[Sequence[Message]],
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
    ) -> list[Generation]:
        """Answer each conversation (greedy when ``temperature`` is 0)."""
        return self._generate(conversations, max_new_tokens, temperature, self.model)

    def _generate(
        self,
        conversations: Sequence[Sequence[Message]],
        max_new_tokens: int,
        temperature: float,
        model: str,
        *,
        without_adapter: bool = False,
    ) -> list[Generation]:
        """Check, answer from the cache where possible, generate the rest.

        ``model`` is the id the answers are cached under (:class:`_BaseView` passes the base
        model's).
        """
        convs = check_request(conversations, max_new_tokens=max_new_tokens, temperature=temperature)
        params = {
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "chat_template_kwargs": self.chat_template_kwargs,
        }
        if self.repetition_penalty != 1.0:  # old cache keys stay valid for the default
            params["repetition_penalty"] = self.repetition_penalty
        if self.bf16_autocast:
            params["bf16_autocast"] = True

        def run(todo: list[list[dict[str, str]]]) -> list[Generation]:
            if not without_adapter:
                return self._generate_uncached(todo, max_new_tokens, temperature)
            merged = _adapter_merged(self.lm)
            try:
                with self.lm.disable_adapter():
                    return self._generate_uncached(todo, max_new_tokens, temperature)
            finally:
                if merged:  # PEFT unmerged the adapter to switch it off
                    self.lm.merge_adapter()

        return cached_generate(self.cache, model, convs, params, run)

    def _generate_uncached(
        self, convs: list[list[dict[str, str]]], max_new_tokens: int, temperature: float
    ) -> list[Generation]:
        import torch

        encoded = [encode_prompt(self.tokenizer, self.render(c)) for c in convs]
        # Similar lengths batched together waste less compute on padding.
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out: list[Generation | None] = [None] * len(encoded)
        sampling = temperature > 0
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": sampling,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if self.repetition_penalty != 1.0:
            gen_kwargs["repetition_penalty"] = self.repetition_penalty
        if sampling:
            gen_kwargs["temperature"] = temperature
        else:  # override sampling defaults shipped in the model's generation_config
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            ids, mask = _left_pad([encoded[i] for i in idx], int(self.tokenizer.pad_token_id))
            with torch.no_grad(), autocast(self.bf16_autocast, self.device):
                seq = self.lm.generate(
                    input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **gen_kwargs
                )
            new = seq[:, ids.shape[1] :].tolist()
            for row, i in zip(new, idx, strict=True):
                end = next((j for j, t in enumerate(row) if t in self._stop_ids), None)
                kept = row if end is None else row[:end]
                text = self.tokenizer.decode(kept, skip_special_tokens=True).strip()
                n_completion = len(row) if end is None else end + 1
                out[i] = Generation(text, len(encoded[i]), n_completion)
        return [g for g in out if g is not None]


def _left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """``(input_ids, attention_mask)`` tensors of token rows padded on the left."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, r in enumerate(rows):
        if r:
            ids[k, width - len(r) :] = torch.tensor(list(r), dtype=torch.long)
            mask[k, width - len(r) :] = 1
    return ids, mask


class _BaseView:
    """An :class:`HFBackend` seen without its adapter."""

    name = "hf"

    def __init__(self, owner: HFBackend) -> None:
        self._owner = owner
        self.model = owner.base_model

    def generate(
        self,
        conversations: Sequence[Sequence[Message]],
        *,
        max_new_tokens: int = 64,
        temperature: float = 0.0,
    ) -> list[Generation]:
        """Answer with the base model (adapter disabled)."""
        return self._owner._generate(
            conversations, max_new_tokens, temperature, self.model, without_adapter=True
        )


def _stop_token_ids(tokenizer: Any, lm: Any) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(lm, "generation_config", None), tokenizer):
        eos = getattr(source, "eos_token_id", None)
        if isinstance(eos, int):
            ids.add(eos)
        elif isinstance(eos, list | tuple):
            ids.update(int(x) for x in eos)
    if tokenizer.pad_token_id is not None:
        ids.add(int(tokenizer.pad_token_id))
    if not ids:
        warnings.warn("the tokenizer has no end-of-sequence token", stacklevel=2)
    return ids

"""Local Hugging Face causal language models as a :class:`~emoscope.llm.base.ChatBackend`.

Prompts go through the tokenizer's chat template (with ``add_generation_prompt``), are
left-padded into batches of similar length and decoded greedily unless a temperature is given.
A LoRA adapter saved by :mod:`emoscope.llm.sft` (or any PEFT adapter) can be given as the model
itself or through ``adapter=``. 4-bit loading (bitsandbytes NF4, as in the PRC-Emo reference
setup) is used on request when bitsandbytes and a CUDA device are available.
"""

from __future__ import annotations

import json
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

__all__ = ["HFBackend", "render_chat", "resolve_model_and_adapter"]


def resolve_model_and_adapter(model: str, adapter: str | None = None) -> tuple[str, str | None]:
    """Split ``model`` into (base model, adapter) when it is a PEFT adapter folder.

    An adapter folder holds ``adapter_config.json`` naming its base model in
    ``base_model_name_or_path``.
    """
    cfg = Path(model) / "adapter_config.json"
    if adapter is None and cfg.is_file():
        try:
            base = json.loads(cfg.read_text("utf-8"))["base_model_name_or_path"]
        except (ValueError, KeyError) as e:
            raise EmoscopeError(f"{cfg}: no usable 'base_model_name_or_path' ({e})") from e
        if not base:
            raise EmoscopeError(f"{cfg}: 'base_model_name_or_path' is empty")
        return str(base), model
    return model, adapter


def _merge_system(conv: list[dict[str, str]]) -> list[dict[str, str]]:
    """Fold system messages into the first user message, for templates without a system role."""
    system = "\n\n".join(m["content"] for m in conv if m["role"] == "system")
    rest = [dict(m) for m in conv if m["role"] != "system"]
    if not system:
        return rest
    for m in rest:
        if m["role"] == "user":
            m["content"] = f"{system}\n\n{m['content']}"
            return rest
    return [{"role": "user", "content": system}, *rest]


def render_chat(
    tokenizer: Any,
    conv: Sequence[Message],
    *,
    add_generation_prompt: bool = True,
    chat_template_kwargs: Mapping[str, Any] | None = None,
) -> str:
    """The prompt text of a conversation under ``tokenizer``'s chat template.

    Tokenizers without a chat template (base models) get a plain ``Role: content`` layout ending
    in ``Assistant:``; templates that reject a system message get it folded into the first user
    message.
    """
    msgs = [dict(m) for m in conv]
    if getattr(tokenizer, "chat_template", None) is None:
        text = "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in msgs)
        return text + ("\n\nAssistant:" if add_generation_prompt else "")
    kwargs = dict(chat_template_kwargs or {})
    try:
        out = tokenizer.apply_chat_template(
            msgs, tokenize=False, add_generation_prompt=add_generation_prompt, **kwargs
        )
    except Exception as e:  # jinja raises TemplateError for e.g. "System role not supported"
        if not any(m["role"] == "system" for m in msgs):
            raise EmoscopeError(f"the tokenizer's chat template failed: {e}") from e
        out = tokenizer.apply_chat_template(
            _merge_system(msgs),
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            **kwargs,
        )
    return str(out)


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
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if batch_size < 1:
            raise EmoscopeError(f"batch_size must be at least 1, got {batch_size}")
        base, adapter = resolve_model_and_adapter(model, adapter)
        self.base_model = base
        self.adapter = adapter
        self.model = base if adapter is None else f"{base}+{adapter}"
        self.batch_size = batch_size
        self.chat_template_kwargs = dict(
            {"enable_thinking": False} if chat_template_kwargs is None else chat_template_kwargs
        )
        self.cache = ResponseCache(cache) if isinstance(cache, str | Path) else cache

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        torch_dtype: Any = None
        if dtype == "auto":
            torch_dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        else:
            torch_dtype = getattr(torch, dtype, None)
            if not isinstance(torch_dtype, torch.dtype):
                raise EmoscopeError(f"unknown dtype {dtype!r}; expected e.g. float32, bfloat16")
        load_kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
        if load_in_4bit:
            load_kwargs["quantization_config"] = self._bnb_config(torch_dtype)
            load_kwargs["device_map"] = {"": self.device.index or 0}

        tok_source = adapter if adapter and _has_tokenizer(adapter) else base
        self.tokenizer: Any
        self.lm: Any
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                tok_source, trust_remote_code=trust_remote_code
            )
            self.lm = AutoModelForCausalLM.from_pretrained(base, **load_kwargs)
        except (OSError, ValueError) as e:
            raise EmoscopeError(f"cannot load the causal LM {base!r}: {e}") from e
        if adapter is not None:
            self.lm = _apply_adapter(self.lm, adapter)
        if not load_in_4bit:
            self.lm.to(self.device)
        self.lm.eval()

        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._stop_ids = _stop_token_ids(self.tokenizer, self.lm)

    @staticmethod
    def _bnb_config(compute_dtype: Any) -> Any:
        import torch

        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise EmoscopeError(
                "load_in_4bit needs the bitsandbytes package (pip install bitsandbytes)"
            ) from None
        if not torch.cuda.is_available():
            raise EmoscopeError("load_in_4bit needs a CUDA GPU; none is available")
        from transformers import BitsAndBytesConfig

        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_use_double_quant=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=compute_dtype,
        )

    def base_view(self) -> ChatBackend:
        """A backend sharing this model with the adapter switched off (itself without adapter).

        Used for the stage-1 cue prompts when a LoRA adapter was fine-tuned for the final
        prompt only: the base model writes the descriptions, no second copy is loaded.
        """
        if self.adapter is None:
            return self
        return _BaseView(self)

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

        def run(todo: list[list[dict[str, str]]]) -> list[Generation]:
            if without_adapter:
                with self.lm.disable_adapter():
                    return self._generate_uncached(todo, max_new_tokens, temperature)
            return self._generate_uncached(todo, max_new_tokens, temperature)

        return cached_generate(self.cache, model, convs, params, run)

    def _generate_uncached(
        self, convs: list[list[dict[str, str]]], max_new_tokens: int, temperature: float
    ) -> list[Generation]:
        import torch

        texts = [self.render(c) for c in convs]
        lengths = [len(self.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
        # Similar lengths batched together waste less compute on padding.
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        out: list[Generation | None] = [None] * len(texts)
        sampling = temperature > 0
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": sampling,
            "pad_token_id": self.tokenizer.pad_token_id,
        }
        if sampling:
            gen_kwargs["temperature"] = temperature
        else:  # override sampling defaults shipped in the model's generation_config
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self.tokenizer(
                [texts[i] for i in idx],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(self.device)
            with torch.no_grad():
                seq = self.lm.generate(**enc, **gen_kwargs)
            new = seq[:, enc["input_ids"].shape[1] :].tolist()
            prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
            for row, i, n_prompt in zip(new, idx, prompt_lens, strict=True):
                end = next((j for j, t in enumerate(row) if t in self._stop_ids), None)
                kept = row if end is None else row[:end]
                text = self.tokenizer.decode(kept, skip_special_tokens=True).strip()
                n_completion = len(row) if end is None else end + 1
                out[i] = Generation(text, int(n_prompt), n_completion)
        return [g for g in out if g is not None]


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


def _has_tokenizer(folder: str) -> bool:
    p = Path(folder)
    return (p / "tokenizer_config.json").is_file() or (p / "tokenizer.json").is_file()


def _apply_adapter(lm: Any, adapter: str) -> Any:
    try:
        from peft import PeftModel
    except ImportError:
        raise EmoscopeError("loading a LoRA adapter needs the peft package") from None
    try:
        return PeftModel.from_pretrained(lm, adapter)
    except (OSError, ValueError) as e:
        raise EmoscopeError(f"cannot load the adapter {adapter!r}: {e}") from e


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

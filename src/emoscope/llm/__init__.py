"""LLM support: chat backends, PRC-Emo prompts, answer parsing and LoRA fine-tuning.

* :mod:`emoscope.llm.base` — the :class:`ChatBackend` protocol, :class:`Generation`, the on-disk
  :class:`ResponseCache` and :func:`load_backend`;
* :mod:`emoscope.llm.hf` — local transformers causal LMs; :mod:`emoscope.llm.openai` — any
  OpenAI-compatible server (vLLM, llama.cpp, Ollama, hosted APIs);
* :mod:`emoscope.llm.prompting` — prompt templates (data files), stage-1 emotion cues, the final
  PRC prompt; :mod:`emoscope.llm.parsing` — labels, confidence and rationale from answers;
* :mod:`emoscope.llm.sft` — LoRA fine-tuning on PRC prompts with the curriculum.

The recogniser built on these is :class:`emoscope.recognizers.llm.LLMRecognizer` (``"llm"``).
Importing this package does not import torch or transformers.
"""

from __future__ import annotations

from emoscope.llm.base import (
    BACKENDS,
    ChatBackend,
    Generation,
    Message,
    ResponseCache,
    load_backend,
)
from emoscope.llm.parsing import ParsedAnswer, parse_answer, parse_confidence, parse_json_object

__all__ = [
    "BACKENDS",
    "ChatBackend",
    "Generation",
    "Message",
    "ParsedAnswer",
    "ResponseCache",
    "load_backend",
    "parse_answer",
    "parse_confidence",
    "parse_json_object",
]

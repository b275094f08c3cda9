"""``emoscope audit``: one emotion report card of a language model.

One run, one folder: ``audit.json`` (every number), ``report.md`` (with its PNGs) and a
self-contained ``report.html`` (figures inline, opens offline), for a local model (short name,
folder, ``.gguf`` file, Hub id) or a black-box model behind an OpenAI-protocol server. The
sections and the methods they come from:

* ``recognition`` — emotion recognition in conversation on MELD with the PRC-Emo prompt (Li et
  al., "Do LLMs Feel? Teaching Emotion Recognition with Prompts, Retrieval, and Curriculum
  Learning", AAAI 2026), in label-scoring mode when the backend scores answers (each label's
  log-likelihood as the reply), and the calibration of that label distribution (ECE,
  reliability diagram).
* ``benchmarks`` — EmoBench EU and EA (Sabour et al., "EmoBench: Evaluating the Emotional
  Intelligence of Large Language Models", ACL 2024), multiple choice scored by choice
  log-likelihood as lm-evaluation-harness does (Gao et al.), and EQ-Bench v2 (Paech, "EQ-Bench:
  An Emotional Intelligence Benchmark for Large Language Models", 2023) with its official
  scoring beside emoscope's expected-value variant.
* ``stimuli`` — sensitivity to emotional stimuli: EmotionPrompt (Li et al., "Large Language
  Models Understand and Can be Enhanced by Emotional Stimuli", 2023, arXiv:2307.11760) and
  NegativePrompt (Wang et al., "NegativePrompt: Leveraging Psychology for Large Language Models
  Enhancement via Negative Emotional Stimuli", IJCAI 2024, arXiv:2405.02814) A/B against the
  plain prompt with exact McNemar tests and Holm correction.
* ``probes`` (open weights) — the layer curve of linear probes, after "Decoding Emotion in the
  Deep: A Systematic Study of How LLMs Represent, Retain, and Express Emotion" (Zhang & Zhong,
  2025, arXiv:2510.04064), with the random-init control.
* ``steering`` (open weights) — success against steering strength at matched fluency, with
  directions and the steering recipe of "Do LLMs 'Feel'? Emotion Circuits Discovery and
  Control" (Wang et al., 2025, arXiv:2510.11328); degenerate replies count as failures.

A black-box model skips the sections that need weights, and the others say when the server
cannot score answers (they then generate and parse, as the benchmarks' authors do). Every
section calls the library's own code (:mod:`emoscope.audit.sections`); finished sections are
cached in the output folder, so a re-run continues (:mod:`emoscope.audit.run`); the report is
rendered by :mod:`emoscope.audit.report`.
"""

from __future__ import annotations

from emoscope.audit.config import SECTIONS, SIZES, AuditConfig, AuditSizes, select_sections
from emoscope.audit.report import render_audit, write_audit_report
from emoscope.audit.run import SectionCache, run_audit
from emoscope.audit.sections import SECTION_FUNCTIONS, SectionContext
from emoscope.audit.target import AuditTarget, open_target

__all__ = [
    "SECTIONS",
    "SECTION_FUNCTIONS",
    "SIZES",
    "AuditConfig",
    "AuditSizes",
    "AuditTarget",
    "SectionCache",
    "SectionContext",
    "open_target",
    "render_audit",
    "run_audit",
    "select_sections",
    "write_audit_report",
]

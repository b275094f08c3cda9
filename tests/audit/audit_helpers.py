"""Helpers of the audit tests: tiny sizes and readers of an audit folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emoscope.audit import AuditSizes

#: Sizes for tiny models: every section runs, in seconds.
TINY = AuditSizes(
    meld_limit=4,
    retrieve=0,
    cue_max_new_tokens=8,
    emobench_limit=2,
    eqbench_limit=2,
    stimuli="EP02,NP01",
    stimuli_tasks=("emotion", "emobench-eu"),
    stimuli_items=3,
    probe_train=40,
    probe_test=20,
    steer_emotions=("joy", "anger"),
    steer_prompts=2,
    steer_alphas=(0.0, 4.0),
    steer_max_new_tokens=6,
    sev_scenarios=2,
)


def report_files(folder: Path) -> list[str]:
    """The report files in ``folder`` (not the section cache)."""
    return sorted(p.name for p in folder.glob("*") if p.is_file())


def section_status(audit: dict[str, Any]) -> dict[str, str]:
    return {k: v["status"] for k, v in audit["sections"].items()}

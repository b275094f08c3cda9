"""Running an audit: the sections in order, each cached in the output folder, then the report.

The output folder holds the report files (``audit.json``, ``report.md``, ``report.html`` and
the PNGs) and ``.audit/``: one JSON file per finished section, keyed by a digest of the model
and the settings the section depends on, and the per-item checkpoints of long sections. A
re-run skips the sections that finished and continues a cut one from its checkpoint. The
report files are rendered in memory once every section is done and each is written
atomically, so a failed or interrupted run never leaves a half-written report.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emoscope._io import write_json
from emoscope._version import __version__
from emoscope.audit.config import WEIGHT_SECTIONS, AuditConfig
from emoscope.audit.report import write_audit_report
from emoscope.audit.sections import SECTION_FUNCTIONS, SectionContext, skipped
from emoscope.audit.target import AuditTarget
from emoscope.errors import DatasetNotFoundError

__all__ = [
    "SectionCache",
    "run_audit",
]

CACHE_FOLDER = ".audit"


class SectionCache:
    """Finished sections of an audit, one JSON file each under ``folder``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def _path(self, section: str) -> Path:
        return self.folder / "sections" / f"{section}.json"

    def get(self, section: str, key: str) -> dict[str, Any] | None:
        """The cached result of ``section`` if it was computed with ``key``."""
        import json

        path = self._path(section)
        if not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text("utf-8"))
        except ValueError:
            return None
        if not isinstance(entry, dict) or entry.get("key") != key:
            return None
        result = entry.get("result")
        return result if isinstance(result, dict) else None

    def put(self, section: str, key: str, result: dict[str, Any]) -> None:
        """Store the result of ``section`` (atomically)."""
        write_json(self._path(section), {"key": key, "result": result})


def _weights_reason(target: AuditTarget) -> str:
    return (
        f"needs the model's weights; the {target.kind} backend is a black box (audit a local "
        "model, folder, .gguf file or Hub id with --backend hf for this section)"
    )


def _torch_threads() -> int | None:
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


def run_audit(
    target: AuditTarget,
    config: AuditConfig,
    out: str | Path,
    *,
    progress: bool = True,
    say: Callable[[str], None] | None = None,
    llm_cache: str | Path | None = None,
) -> dict[str, Any]:
    """Run the chosen sections on ``target`` and write the report into ``out``.

    ``llm_cache`` is the LLM response and stage-1 cue cache (default: emoscope's user cache,
    :func:`emoscope.recognizers.llm.default_cache_dir`). Returns the ``audit.json`` content.
    """
    from tqdm import tqdm

    from emoscope.recognizers.llm import default_cache_dir

    log = say or (lambda _m: None)
    folder = Path(out)
    cache = SectionCache(folder / CACHE_FOLDER)
    work = folder / CACHE_FOLDER / "work"
    work.mkdir(parents=True, exist_ok=True)
    ctx = SectionContext(
        llm_cache=Path(llm_cache) if llm_cache is not None else default_cache_dir(),
        work=work,
        progress=progress,
        say=log,
    )
    load0 = os.getloadavg()
    t0, cpu0 = time.perf_counter(), time.process_time()
    sections: dict[str, Any] = {}
    bar = tqdm(total=len(config.sections), desc="audit", file=sys.stderr, disable=not progress)
    try:
        for name in config.sections:
            bar.set_postfix_str(name)
            key = config.section_key(name, target.name)
            hit = cache.get(name, key)
            if hit is not None:
                log(f"{name}: finished in an earlier run (cached)")
                sections[name] = hit | {"cached": True}
                bar.update(1)
                continue
            t1 = time.perf_counter()
            if name in WEIGHT_SECTIONS and not target.open_weight:
                result = skipped(_weights_reason(target))
            else:
                try:
                    result = SECTION_FUNCTIONS[name](target, config, ctx)
                except DatasetNotFoundError as e:
                    result = skipped(" ".join(str(e).split()))
            result["seconds"] = round(time.perf_counter() - t1, 1)
            cache.put(name, key, result)
            sections[name] = result
            bar.update(1)
    finally:
        bar.close()
    audit = {
        "emoscope_version": __version__,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "target": target.describe(),
        "size": config.size,
        "sizes": asdict(config.resolved_sizes),
        "sections_run": list(config.sections),
        "sections": sections,
        "seconds": round(time.perf_counter() - t0, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_start": [round(x, 2) for x in load0],
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            "process_cpu_seconds": round(time.process_time() - cpu0, 1),
            "torch_threads": _torch_threads(),
            "note": "other jobs may share the CPU: read the wall time with the load average",
        },
    }
    write_audit_report(audit, folder)
    return audit

"""annotate: workers die with their driver, finishing survives a kill at any step, SIGINT hints."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

import emoscope.annotate.driver as annotate_mod
from emoscope.annotate import AnnotateOptions, annotate

TESTS = Path(__file__).resolve().parents[1]
LEX = AnnotateOptions(recognizer="lexicon", chunk_size=10)
WORDS = ["I love this", "so furious right now", "thanks a lot", "wow what a surprise"]


def _write_csv(path: Path, n: int) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "text"])
        w.writerows([i, f"{WORDS[i % len(WORDS)]} #{i}"] for i in range(n))
    return path


def _env(delay: str) -> dict[str, str]:
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "EMOSCOPE_TEST_DELAY": delay}


def test_workers_and_resource_tracker_die_with_a_sigkilled_driver(tmp_path: Path) -> None:
    """Defect 2: after kill -9 of annotate its workers lived on under PID 1."""
    src = _write_csv(tmp_path / "in.csv", 600)
    out = tmp_path / "out.csv"
    cmd = [sys.executable, "-m", "emoscope.cli", "annotate", str(src), str(out),
           "--chunk-size", "30", "-r", "scale_helpers:SlowRecognizer", "--workers", "2",
           "--no-progress"]  # fmt: skip
    # Its own session, so that a failure here can still clean up with killpg; the driver is
    # killed alone (not its group), as `kill -9 PID` does.
    proc = subprocess.Popen(cmd, env=_env("0.2"), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    driver = psutil.Process(proc.pid)
    try:
        deadline = time.monotonic() + 90
        while len(list((tmp_path / "out.csv.parts").glob("chunk-*.csv"))) < 1:
            assert proc.poll() is None, "the run ended early"
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.05)
        family = driver.children(recursive=True)
        assert len(family) >= 3, family  # two workers and the resource tracker
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        _, alive = psutil.wait_procs(family, timeout=15)
        assert not alive, [(p.pid, p.cmdline()[-3:]) for p in alive]
    finally:
        with __import__("contextlib").suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_die_with_parent_exits_when_the_parent_is_gone(tmp_path: Path) -> None:
    """The watchdog fallback alone (no prctl): a child whose parent dies exits by itself."""
    script = (
        "import os, subprocess, sys, time\n"
        "code = ('import os, sys, time; import emoscope.annotate.local as a; '\n"
        "        'a.sys.platform = \"other\"; a._die_with_parent(os.getppid()); '\n"
        "        'print(os.getpid(), flush=True); time.sleep(60)')\n"
        "p = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True)\n"
        "print(p.stdout.readline().strip(), flush=True)\n"
        "time.sleep(60)\n"
    )
    mid = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert mid.stdout is not None
        child = psutil.Process(int(mid.stdout.readline()))
        assert child.is_running()
        mid.kill()
        mid.wait(timeout=10)
        _, alive = psutil.wait_procs([child], timeout=10)
        assert not alive
    finally:
        with __import__("contextlib").suppress(ProcessLookupError, PermissionError):
            os.killpg(mid.pid, signal.SIGKILL)


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (not even except Exception handlers)."""


@pytest.mark.parametrize("step", ["output", "bad-rows", "renamed", "rmtree"])
def test_a_kill_at_any_step_of_finishing_resumes_to_the_same_output(
    step: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 3: a kill while removing the work folder left it without its manifest."""
    src = _write_csv(tmp_path / "in.csv", 45)
    ref = annotate(src, tmp_path / "ref.csv", LEX, workers=1, progress=False)
    out = tmp_path / "out.csv"
    real_rmtree = annotate_mod.shutil.rmtree

    def kill_at(name: str) -> None:
        if name == step:
            raise _Killed

    def partial_rmtree(path: Path, *args: object, **kwargs: object) -> None:
        # Remove part of the folder, the manifest first, then die.
        (Path(path) / "manifest.json").unlink()
        next(Path(path).glob("chunk-*")).unlink()
        raise _Killed

    with monkeypatch.context() as m:
        if step == "rmtree":
            m.setattr(annotate_mod.shutil, "rmtree", partial_rmtree)
        else:
            m.setattr(annotate_mod, "_finish_step", kill_at)
        with pytest.raises(_Killed):
            annotate(src, out, LEX, workers=1, progress=False)
    assert annotate_mod.shutil.rmtree is real_rmtree
    res = annotate(src, out, LEX, workers=1, resume=True, progress=False)
    assert out.read_bytes() == (tmp_path / "ref.csv").read_bytes()
    assert res.rows == ref.rows
    assert Path(f"{out}.bad-rows.jsonl").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["in.csv", "ref.csv", "ref.csv.bad-rows.jsonl", "out.csv", "out.csv.bad-rows.jsonl"]
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_sigint_ends_with_130_and_a_resume_hint(tmp_path: Path) -> None:
    """Defect 9: SIGINT ended annotate with exit 130 and no hint to --resume."""
    # 300 chunks of 10 rows at 0.05 s each: the run lasts long enough that the signal always
    # arrives before the end
    src = _write_csv(tmp_path / "in.csv", 3000)
    out = tmp_path / "out.csv"
    cmd = [sys.executable, "-m", "emoscope.cli", "annotate", str(src), str(out),
           "--chunk-size", "10", "-r", "scale_helpers:SlowRecognizer", "--workers", "1",
           "--no-progress"]  # fmt: skip
    # A job started in the background by a shell without job control inherits SIGINT ignored,
    # and Python then leaves it ignored: the child gets the default back, as in a terminal.
    proc = subprocess.Popen(cmd, env=_env("0.05"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=_default_sigint)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not list((tmp_path / "out.csv.parts").glob("chunk-*.csv")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err

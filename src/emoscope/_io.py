"""Atomic file output: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(
    path: str | Path, mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO[Any]]:
    """Open ``path`` for writing so that readers never see a half-written file.

    The data goes to a temporary file in the same directory, which replaces ``path`` only when
    the block exits without an exception; on error the temporary file is removed.
    """
    path = Path(path)
    if path.is_dir():  # else os.replace would fail naming the temporary file
        raise IsADirectoryError(errno.EISDIR, "is a folder; expected a file name", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    binary = "b" in mode
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def require_file(path: Path) -> None:
    """Raise :class:`~emoscope.errors.EmoscopeError` unless ``path`` is an existing file."""
    from emoscope.errors import EmoscopeError

    if path.is_dir():
        raise EmoscopeError(f"{path}: is a folder; expected a file")
    if not path.is_file():
        raise EmoscopeError(f"{path}: no such file")


def check_writable(path: str | Path, *, folder: bool = False) -> None:
    """Fail early, before any work, when ``path`` (a file, or a ``folder``) cannot be written.

    Creates nothing: finds the nearest existing ancestor and writes (and removes) a probe
    file there. Raises :class:`OSError` naming ``path`` or the ancestor that is the problem.
    """
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(path))
    if not folder and path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; expected a file name", str(path))
    base = path if folder else path.parent
    base = base.absolute()
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "is not a folder", str(base))
    try:
        with tempfile.TemporaryFile(prefix=".emoscope-probe.", dir=base):
            pass
    except OSError as e:
        raise OSError(e.errno, f"cannot write here ({e.strerror})", str(base)) from None


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented UTF-8 JSON, atomically."""
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False)
        fh.write("\n")


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_open(path) as fh:
        fh.write(text)

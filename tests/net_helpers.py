"""Loopback networking for tests."""

from __future__ import annotations

import socket


def unused_port() -> int:
    """A loopback TCP port nothing listens on (bound once by the OS, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

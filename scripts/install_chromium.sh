#!/usr/bin/env bash
# Make Debian's Chromium available for the browser test (tests/serve/test_page.py).
#
# Idempotent: does nothing when a chromium binary is already there. Installs the Debian
# `chromium` package when running as root on a system with apt-get; otherwise prints one line
# saying what to do and exits 0, so the test set-up goes on and the page test is skipped with
# that reason. Playwright drives this system browser: no `playwright install` is needed.
set -u

if [ -n "${EMOSCOPE_CHROMIUM:-}" ] && [ -x "${EMOSCOPE_CHROMIUM}" ]; then
    exit 0
fi
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium: Chromium is missing; install Debian's chromium package (sudo apt-get install -y chromium) or set EMOSCOPE_CHROMIUM to a Chromium binary, else the browser test is skipped" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! nice -n 15 apt-get install -y -qq chromium >/dev/null 2>&1; then
    # The package lists may be missing or stale: refresh them once and try again.
    nice -n 15 apt-get update -qq >/dev/null 2>&1 || true
    if ! nice -n 15 apt-get install -y -qq chromium >/dev/null 2>&1; then
        echo "install_chromium: 'apt-get install -y chromium' failed; the browser test will be skipped" >&2
        exit 0
    fi
fi
echo "install_chromium: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)" >&2

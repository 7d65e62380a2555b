#!/usr/bin/env bash
# Install Debian's Chromium for the browser test (tests/test_browser.py, marker `browser`).
# Idempotent and non-interactive. Tolerant: if Chromium cannot be installed it says why and
# exits 0, and the test then skips with its own reason. Playwright's Python package (pinned in
# requirements.txt) drives this Chromium through `executable_path`: no browser download.
set -u
export DEBIAN_FRONTEND=noninteractive

if [ -x /usr/bin/chromium ]; then
    echo "install-browser: chromium already installed ($(/usr/bin/chromium --version 2>/dev/null || echo 'version unknown'))"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: no apt-get on this system; cannot install chromium (the browser test will skip)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install-browser: not root and no password-less sudo; cannot install chromium (the browser test will skip)"
        exit 0
    fi
fi
if ! $SUDO apt-get update -qq; then
    echo "install-browser: 'apt-get update' failed (offline or no package mirror?); the browser test will skip"
    exit 0
fi
if ! $SUDO apt-get install -y -qq chromium; then
    echo "install-browser: 'apt-get install chromium' failed (see above); the browser test will skip"
    exit 0
fi
# Korean glyphs in screenshots (cosmetic; the test does not depend on it).
$SUDO apt-get install -y -qq fonts-nanum >/dev/null 2>&1 || echo "install-browser: fonts-nanum not installed (Hangul shows as boxes in screenshots)"
echo "install-browser: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
exit 0

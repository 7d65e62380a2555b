#!/usr/bin/env bash
# Install Debian's Chromium and a Korean font (fonts-nanum) for the browser tests
# (tests/test_browser.py, marker `browser`; the Korean journey checks that Hangul is drawn with a
# Korean font, not as empty boxes). Idempotent and non-interactive: installs whichever is missing,
# also when Chromium is already there. Tolerant: if they cannot be installed it says why and exits 0,
# and the tests then skip with their own reason. Playwright's Python package (pinned in
# requirements.txt) drives this Chromium through `executable_path`: no browser download.
set -u
export DEBIAN_FRONTEND=noninteractive

have_font() { command -v fc-list >/dev/null 2>&1 && fc-list :lang=ko family | grep -qi nanum; }
if [ -x /usr/bin/chromium ] && have_font; then
    echo "install-browser: chromium and a Korean font already installed ($(/usr/bin/chromium --version 2>/dev/null || echo 'version unknown'))"
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
if ! $SUDO apt-get install -y -qq chromium fonts-nanum fontconfig; then
    echo "install-browser: 'apt-get install chromium fonts-nanum fontconfig' failed (see above); the browser tests will skip"
    exit 0
fi
echo "install-browser: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
exit 0

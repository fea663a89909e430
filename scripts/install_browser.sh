#!/usr/bin/env bash
# Install Debian's Chromium for the HTML report's real-browser test (tests/test_report_html.py).
#
# Does nothing when /usr/bin/chromium is already there. Installs only where apt-get exists and we are root
# or have passwordless sudo; otherwise says why it skipped and exits 0 (the browser test then skips itself).
set -uo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "install_browser: chromium already installed ($(/usr/bin/chromium --version 2>/dev/null || echo '?'))"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: skipped: no apt-get (not a Debian-like system); the browser test will be skipped"
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
    SUDO=(sudo -n)
else
    echo "install_browser: skipped: not root and no passwordless sudo; the browser test will be skipped"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
echo "install_browser: installing Debian's chromium and a font (apt-get)"
if ! "${SUDO[@]}" apt-get update -q >/dev/null; then
    echo "install_browser: skipped: apt-get update failed; the browser test will be skipped"
    exit 0
fi
if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null; then
    echo "install_browser: skipped: apt-get install chromium failed; the browser test will be skipped"
    exit 0
fi
echo "install_browser: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"

#!/usr/bin/env bash
# Install what the browser tests need: Debian's chromium (driven by Playwright for Python with
# executable_path=/usr/bin/chromium; Playwright's own browser download never works here) and a
# CJK font, without which Chinese renders as empty boxes in pages and screenshots.
# Idempotent and quiet: does nothing when both are there. Needs root (or sudo).
set -euo pipefail

have_font() {
    command -v fc-list >/dev/null 2>&1 && fc-list :lang=zh family 2>/dev/null | grep -q .
}

if [ -x /usr/bin/chromium ] && have_font; then
    echo "install-browser: chromium and a CJK font already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# fonts-wqy-microhei is small (~5 MB) and covers simplified Chinese; fontconfig gives fc-list.
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-wqy-microhei fontconfig >/dev/null
$SUDO fc-cache -f >/dev/null 2>&1 || true

test -x /usr/bin/chromium
have_font
echo "install-browser: installed $(/usr/bin/chromium --version 2>/dev/null | head -n1) and a CJK font"

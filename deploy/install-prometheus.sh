#!/usr/bin/env bash
# Install Debian's prometheus package (prometheus + promtool) for the tests in tests/deploy.
# Idempotent: does nothing when promtool is already on PATH. Used by CI; needs root (or sudo).
# The Debian package would normally start the prometheus service: this script never does,
# the tests start their own prometheus on a free loopback port.
set -euo pipefail

if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then
    echo "install-prometheus: $(promtool --version 2>&1 | head -n1) already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

# Forbid service starts during the install (policy-rc.d exit 101 = "action forbidden"), unless
# the machine already has its own policy; ours is removed on exit.
POLICY=/usr/sbin/policy-rc.d
OWN_POLICY=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 0755 "$POLICY"
    OWN_POLICY=1
fi
cleanup() {
    if [ "$OWN_POLICY" -eq 1 ]; then
        $SUDO rm -f "$POLICY"
    fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null

# In case an init system started it anyway (policy-rc.d is advisory for some setups).
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    $SUDO systemctl stop prometheus || true
fi

command -v promtool >/dev/null
echo "install-prometheus: installed $(promtool --version 2>&1 | head -n1)"

#!/usr/bin/env bash
# Installs Debian's XRootD server (xrootd-server), idempotently, for the tests that read files
# over root:// (tests/test_xrootd.py): each starts its own server on 127.0.0.1 on a free port,
# serving a temporary folder (tests/conftest.py, start_xrootd). .ci/run calls this before
# make test. The Python client comes with requirements.txt (xrootd).
set -euo pipefail
if command -v xrootd >/dev/null 2>&1; then
    echo "xrootd server: $(command -v xrootd)"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "xrootd-server is not installed and this is not root: the XRootD tests will skip" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq xrootd-server >/dev/null
echo "xrootd server: $(command -v xrootd)"

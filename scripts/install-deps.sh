#!/bin/sh
# Install exactly the Debian packages Cumulus builds, tests and runs with
# (DESIGN.md §3). Idempotent: packages already present are not reinstalled,
# and apt is not touched at all when everything is there.
set -eu

PKGS="build-essential pkg-config
libsodium-dev libsqlite3-dev sqlite3 libmicrohttpd-dev libcurl4-openssl-dev
libjansson-dev libfyaml-dev bubblewrap libseccomp-dev libarchive-dev
libcmocka-dev libpng-dev zlib1g-dev curl procps jq busybox-static"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "install-deps: need root to install:$missing" >&2; exit 1
    fi
fi

echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing

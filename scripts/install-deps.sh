#!/usr/bin/env bash
# Installs the Debian packages gatehouse needs to build and test, only those that are missing,
# and says what it installs. With --test it also installs the end-to-end suite's npm packages
# (npm ci in tests/, skipped when tests/node_modules already matches tests/package-lock.json).
#
#   scripts/install-deps.sh          build dependencies
#   scripts/install-deps.sh --test   build + test dependencies (node, npm packages)
set -euo pipefail

cd "$(dirname "$0")/.."

want_test=0
for arg in "$@"; do
    case "$arg" in
    --test) want_test=1 ;;
    -h | --help)
        sed -n '2,8p' "$0"
        exit 0
        ;;
    *)
        echo "install-deps: unknown argument '$arg'" >&2
        exit 2
        ;;
    esac
done

# Package -> why. Checked with dpkg, installed with apt-get when missing.
packages=(
    build-essential      # gcc, make, libc headers
    make
    pkg-config
    libevent-dev         # event loop, libevent_pthreads
    libcurl4-openssl-dev # upstream HTTP
    libjansson-dev       # JSON
    libssl-dev           # hashing, TLS
    libhttp-parser-dev   # inbound HTTP parsing
    libcmocka-dev        # unit tests
    libsqlite3-dev       # request log
    libpython3.11-dev    # gatehouse-sandbox embeds CPython (pkg-config python3-embed)
    libseccomp-dev       # gatehouse-sandbox's system call filter
    clang                # fuzz targets (libFuzzer)
)

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for p in "${packages[@]}"; do
    installed "$p" || missing+=("$p")
done
# Test-only packages: promtool (from prometheus) checks the /metrics output.
if [ "$want_test" -eq 1 ] && ! command -v promtool >/dev/null 2>&1; then
    missing+=(prometheus)
fi
# clang-format (Debian's, version 14 on bookworm) checks that the C sources keep the repo's format.
if [ "$want_test" -eq 1 ] && ! command -v clang-format >/dev/null 2>&1; then
    missing+=(clang-format)
fi
if [ "$want_test" -eq 1 ] && ! command -v node >/dev/null 2>&1; then
    missing+=(nodejs npm)
elif [ "$want_test" -eq 1 ] && ! command -v npm >/dev/null 2>&1; then
    missing+=(npm)
fi

if [ "${#missing[@]}" -gt 0 ]; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "install-deps: missing packages (${missing[*]}) and not root, no sudo" >&2
            exit 1
        fi
    fi
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Update the package lists once, when they are absent or the install cannot find a package.
    if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e '^lock$' -e '^partial$' -e '^auxfiles$')" ]; then
        "${sudo[@]}" apt-get update -q
        "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
    elif ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; then
        "${sudo[@]}" apt-get update -q
        "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
else
    echo "install-deps: Debian packages already installed"
fi

if [ "$want_test" -eq 1 ]; then
    node_major=$(node -p 'process.versions.node.split(".")[0]')
    if [ "$node_major" -lt 20 ]; then
        echo "install-deps: warning: node $(node --version) found; the e2e suite is written for node 20 or later" >&2
    fi
    lock_sum=$(sha256sum tests/package-lock.json | cut -d' ' -f1)
    stamp=tests/node_modules/.gatehouse-lock-sha256
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sum" ]; then
        echo "install-deps: tests/node_modules matches package-lock.json"
    else
        echo "install-deps: npm ci in tests/"
        (cd tests && npm ci --no-audit --no-fund)
        echo "$lock_sum" >"$stamp"
    fi
fi

#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages smallcoder needs to build and test, if missing.
# Uses sudo when not run as root. Extra package names may be passed as arguments.
set -euo pipefail

packages=(g++ meson ninja-build pkg-config doctest-dev libcpp-httplib-dev python3 python3-pyflakes "$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
echo "install-deps: installing ${missing[*]}" >&2
# apt's log goes to stderr: callers such as benchmark.sh keep stdout for their own output.
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2

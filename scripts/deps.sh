#!/usr/bin/env bash
# Install the Debian 12 packages ringmq needs, if any is missing.
# Usage: scripts/deps.sh [extra-package ...]   (run as root, or with sudo available)
set -euo pipefail
pkgs=(gcc make cmake pkg-config liburing-dev libprotobuf-c-dev protobuf-c-compiler
      liblmdb-dev check "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

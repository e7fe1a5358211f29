#!/usr/bin/env bash
# Installs what isola needs from Debian (bookworm) packages, if missing.
# Run as root. Nothing is downloaded from anywhere else.
set -euo pipefail
pkgs=(cmake make g++ libcaf-dev libcereal-dev libboost-test-dev libssl-dev libcli11-dev libseccomp-dev python3 iproute2)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

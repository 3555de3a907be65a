#!/usr/bin/env bash
# Installs what flux2.cpp builds against, from Debian packages. The compiler, CMake and (optionally) the CUDA
# toolkit are expected to be present already.
set -euo pipefail
packages=(cmake ninja-build g++ pkg-config nlohmann-json3-dev libcli11-dev libpng-dev libjpeg-dev zlib1g-dev
          libopenblas-dev libpcre2-dev libicu-dev libgtest-dev libbenchmark-dev
          libwebp-dev libcpp-httplib-dev
          # The server's end-to-end tests: a virtualenv for the openai SDK, a real browser for the page.
          python3 python3-venv chromium chromium-driver fonts-dejavu-core)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all Debian packages present"
fi

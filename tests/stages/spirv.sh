#!/usr/bin/env bash
# spirv.sh: the real-Intel-GPU gate of the Level Zero path. The build compiles the OpenCL backend's
# kernels (kernels/clk/*.cl, one program) to SPIR-V once per variant (kernels/level_zero/
# cl2spv.sh) and embeds the modules; this stage takes those very modules from $BUILD/gen/, checks
# each with spirv-val and compiles it with Intel's ocloc (-spirv_input) for a Tiger Lake (tgllp)
# and an Arc DG2 (dg2-g10) target, and checks that every kernel the backend creates is in it.
# Ends with "N passed, N failed, N skipped".
set -uo pipefail
: "${BUILD:=build}" "${MAKE:=make}"
out=$BUILD/spirv-gate
mkdir -p "$out"
pass=0 fail=0 skip=0
ok() { echo "ok    $1"; pass=$((pass + 1)); }
bad() { echo "FAIL  $1"; sed 's/^/      /' "$2" | head -n 20; fail=$((fail + 1)); }
skipped() { echo "skip  $1 ($2)"; skip=$((skip + 1)); }

for t in clang-14 opt-14 llvm-spirv-14 spirv-val spirv-dis; do
  if ! command -v "$t" >/dev/null; then
    skipped "SPIR-V modules" "$t not installed (tools/deps.sh test)"
    echo "$pass passed, $fail failed, $skip skipped"
    exit 0
  fi
done
# A module table built while the tools were missing is rebuilt once they are there (the tool-set
# stamp of kernels/level_zero/build.mk): on a fresh machine `make run` builds before `make test`
# installs them. A scratch build dir; the first build hides clang-14 from cl2spv.sh.
fresh=$out/fresh-build
rm -rf "$fresh"
if CLANG14=no-such-clang-14 "$MAKE" --no-print-directory BUILD="$fresh" "$fresh/gen/l0_spirv.c" \
     >"$out/fresh.log" 2>&1 && grep -q 'p3_l0_module_count = 0;' "$fresh/gen/l0_spirv.c" &&
   "$MAKE" --no-print-directory BUILD="$fresh" "$fresh/gen/l0_spirv.c" >>"$out/fresh.log" 2>&1 &&
   grep -q 'p3_l0_module_count = [1-9]' "$fresh/gen/l0_spirv.c"; then
  ok "module table rebuilt when the SPIR-V tools appear after a build without them"
else
  bad "module table rebuilt when the SPIR-V tools appear after a build without them" "$out/fresh.log"
fi
rm -rf "$fresh"
if ! "$MAKE" --no-print-directory "$BUILD/gen/l0_spirv.c" >"$out/build.log" 2>&1; then
  bad "building the SPIR-V modules" "$out/build.log"
  echo "$pass passed, $fail failed, $skip skipped"
  exit 1
fi
# The kernel names the backend asks for (kernels/clk/clk_ops.h).
kernels=$(sed -nE 's/^ *X\(P3_CLK_[A-Z0-9_]+, "([a-z0-9_]+)"\).*/\1/p' kernels/clk/clk_ops.h)
targets=(tgllp dg2-g10)
for variant in portable int-dot-emulated intel-sg; do
  spv=$BUILD/gen/l0_$variant.spv
  if [ ! -s "$spv" ]; then
    echo "missing $spv" >"$out/$variant.log"
    bad "$variant module built" "$out/$variant.log"
    continue
  fi
  if spirv-val "$spv" >"$out/$variant.val.log" 2>&1; then
    ok "$variant module: spirv-val"
  else
    bad "$variant module: spirv-val" "$out/$variant.val.log"
  fi
  spirv-dis "$spv" 2>/dev/null | sed -nE 's/.*OpEntryPoint Kernel %[^ ]+ "([^"]+)".*/\1/p' |
    sort >"$out/$variant.entries"
  missing=$(for k in $kernels; do grep -qx "$k" "$out/$variant.entries" || echo "$k"; done)
  if [ -n "$kernels" ] && [ -z "$missing" ]; then
    ok "$variant module: all $(echo "$kernels" | wc -w) kernels of clk_ops.h present"
  else
    echo "missing kernels: ${missing:-(no kernel list)}" >"$out/$variant.entries.log"
    bad "$variant module: kernels present" "$out/$variant.entries.log"
  fi
  for dev in "${targets[@]}"; do
    if ! command -v ocloc >/dev/null; then
      skipped "$variant ocloc $dev" "ocloc not installed (intel-opencl-icd)"
      continue
    fi
    rm -f "$out/$variant.$dev"
    if ocloc compile -file "$spv" -spirv_input -device "$dev" \
         -options "-cl-fp32-correctly-rounded-divide-sqrt" -output_no_suffix \
         -output "$variant.$dev" -out_dir "$out" >"$out/$variant.$dev.log" 2>&1 &&
       [ -s "$out/$variant.$dev" ]; then
      ok "$variant module: ocloc -spirv_input -device $dev"
    else
      bad "$variant module: ocloc -spirv_input -device $dev" "$out/$variant.$dev.log"
    fi
  done
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

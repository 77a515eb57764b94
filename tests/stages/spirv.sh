#!/usr/bin/env bash
# spirv.sh: the real-Intel-GPU gate of the Level Zero path. Every OpenCL C kernel file of
# kernels/opencl/ and kernels/level_zero/ goes through the offline SPIR-V pipeline (cl2spv.sh, which
# runs spirv-val) and the SPIR-V is compiled by Intel's ocloc for a Tiger Lake (tgllp) and an Arc
# DG2 (dg2-g10) target. Ends with "N passed, N failed, N skipped".
set -uo pipefail
: "${BUILD:=build}"
out=$BUILD/spirv-gate
mkdir -p "$out"
pass=0 fail=0 skip=0
ok() { echo "ok    $1"; pass=$((pass + 1)); }
bad() { echo "FAIL  $1"; sed 's/^/      /' "$2" | head -n 20; fail=$((fail + 1)); }
skipped() { echo "skip  $1 ($2)"; skip=$((skip + 1)); }

# Extensions real Intel GPUs have, so variants written for them compile here too.
export CL2SPV_CFLAGS="-Xclang -cl-ext=+cl_khr_fp16,+cl_khr_subgroups,+cl_intel_subgroups,+cl_intel_subgroups_short"
targets=(tgllp dg2-g10)
for cl in kernels/opencl/*.cl kernels/level_zero/*.cl; do
  [ -e "$cl" ] || continue
  name=$(basename "$(dirname "$cl")")_$(basename "$cl" .cl)
  spv=$out/$name.spv
  if ! command -v clang-14 >/dev/null || ! command -v spirv-val >/dev/null ||
     ! command -v llvm-spirv-14 >/dev/null || ! command -v opt-14 >/dev/null; then
    skipped "$cl spirv-val" "SPIR-V toolchain not installed (tools/deps.sh test)"
    continue
  fi
  if kernels/level_zero/cl2spv.sh "$spv" "$cl" >"$out/$name.log" 2>&1; then
    ok "$cl -> SPIR-V, spirv-val"
  else
    bad "$cl -> SPIR-V, spirv-val" "$out/$name.log"
    continue
  fi
  for dev in "${targets[@]}"; do
    if ! command -v ocloc >/dev/null; then
      skipped "$cl ocloc $dev" "ocloc not installed (intel-opencl-icd)"
      continue
    fi
    if ocloc compile -file "$spv" -spirv_input -device "$dev" -output_no_suffix \
         -output "$name.$dev" -out_dir "$out" >"$out/$name.$dev.log" 2>&1 &&
       [ -s "$out/$name.$dev" ]; then
      ok "$cl ocloc -spirv_input -device $dev"
    else
      bad "$cl ocloc -spirv_input -device $dev" "$out/$name.$dev.log"
    fi
  done
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

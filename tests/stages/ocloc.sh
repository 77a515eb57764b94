#!/usr/bin/env bash
# ocloc.sh: the real-Intel-GPU gate of the OpenCL backend. Every OpenCL C file of kernels/clk/
# is compiled from source, as the OpenCL runtime would at load, by Intel's offline compiler (ocloc
# from Debian intel-opencl-icd) for Tiger Lake (tgllp, Xe-LP iGPU) and Arc DG2 (dg2, Xe-HPG: the
# closest target this ocloc knows to Meteor/Lunar Lake iGPUs), with the backend's own build
# options; also with every kernel file concatenated, as the backend builds them (one program).
# A kernel only PoCL accepts fails here. Ends with "N passed, N failed, N skipped".
set -uo pipefail
: "${BUILD:=build}"
out=$BUILD/ocloc-gate
mkdir -p "$out"
pass=0 fail=0 skip=0
targets=(tgllp dg2)
# The backend's build options: portable, the integer-dot-product variant it picks on OpenCL 3.0
# devices with cl_khr_integer_dot_product (both targets have DP4A),
# and the Intel sub-group block-read variant (cl_intel_subgroups), alone and as `auto` picks
# both on an Intel GPU.
variants=("portable:-cl-std=CL1.2" "int_dot:-cl-std=CL3.0 -DP3_INT_DOT=1"
          "intel_sg:-cl-std=CL1.2 -DP3_INTEL_SG=1"
          "intel_auto:-cl-std=CL3.0 -DP3_INT_DOT=1 -DP3_INTEL_SG=1")

all=$out/all_kernels.cl
cat kernels/clk/*.cl >"$all"
for cl in kernels/clk/*.cl "$all"; do
 for variant in "${variants[@]}"; do
  vname=${variant%%:*} options=${variant#*:}
  # the variants only change matmul.cl
  [ "$vname" = portable ] || grep -q P3_INT_DOT "$cl" || continue
  name=$(basename "$cl" .cl).$vname
  for dev in "${targets[@]}"; do
    if ! command -v ocloc >/dev/null; then
      echo "skip  $cl $dev (ocloc not installed: Debian intel-opencl-icd)"
      skip=$((skip + 1))
      continue
    fi
    log=$out/$name.$dev.log
    rm -f "$out/$name.$dev"
    if ocloc compile -file "$cl" -device "$dev" -options "$options" -output_no_suffix \
         -output "$name.$dev" -out_dir "$out" >"$log" 2>&1 && [ -s "$out/$name.$dev" ] &&
       ! grep -qi "warning" "$log"; then
      echo "ok    $cl ($vname: $options) ocloc -device $dev"
      pass=$((pass + 1))
    else
      echo "FAIL  $cl ($vname: $options) ocloc -device $dev"
      sed 's/^/      /' "$log" | head -n 20
      fail=$((fail + 1))
    fi
  done
 done
done
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

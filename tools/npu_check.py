#!/usr/bin/env python3
"""npu_check.py: runs the NPU matmul graphs phi3c emits (tools/npu_emit.c) on OpenVINO's CPU
runtime, an implementation independent of phi3c, and compares each output with phi3c's scalar
w4a32 reference (quant/int4.h p3_matmul_w4a32_ref) written beside it. Test-time only
(tests/stages/npu.sh); the engine never uses OpenVINO.

usage: npu_check.py DIR
Inference precision is forced to f32 (on CPUs with AVX512-BF16 OpenVINO would default to bf16).
Bounds on NMSE = sum (y - ref)^2 / sum ref^2:
  f32 activations: 1e-5 (the issue's bound; only the summation order differs from the reference).
  f16 activations, as the NPU gets them: 1e-6. x, the dequantized weights and y are each rounded
  to f16 (unit roundoff u = 2^-11, relative error uniform in [-u, u], variance u^2/3); these
  independent errors add up to an NMSE of about 3 * u^2 / 3 = 2.4e-7; the bound leaves 4x.
Ends with "N passed, N failed".
"""
import os
import sys

import numpy as np
import openvino as ov

BOUND = {"f32": 1e-5, "f16": 1e-6}
CONFIG = {"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0"}


def nibble_order(core):
    """OpenVINO's own reading of packed 4-bit bytes: a u4 and an i4 input of two elements, given
    the byte 0x21 and 0xF1, through Convert to f32. Returns (u4 values, i4 values)."""
    out = []
    for typ, byte in ((ov.Type.u4, 0x21), (ov.Type.i4, 0xF1)):
        param = ov.opset1.parameter([2], typ)
        model = ov.Model([ov.opset1.convert(param, "f32")], [param])
        compiled = core.compile_model(model, "CPU", CONFIG)
        tensor = ov.Tensor(np.array([byte], dtype=np.uint8), ov.Shape([2]), typ)
        out.append([float(v) for v in compiled(tensor)[0]])
    return out


def swapped_nibbles_fail(core, root, cases):
    """Negative control: the first i4 case with weights as inputs, its nibbles swapped in every
    byte, must miss the bound (so the comparison can tell the two packings apart)."""
    for fields in cases:
        if fields[5] == "i4" and fields[6] == "inputs":
            nmse, bound, _ = run_case(core, root, fields, swap=True)
            return nmse > bound, f"{fields[0]} with swapped nibbles: NMSE {nmse:.3e}"
    return False, "no i4 case with weights as inputs"


def load(path, dtype, count):
    data = np.fromfile(path, dtype=dtype)
    if data.size != count:
        raise ValueError(f"{path}: {data.size} elements, expected {count}")
    return data


def run_case(core, root, fields, swap=False):
    name, tokens, k, o, act, wtype, weights = fields
    tokens, k, o = int(tokens), int(k), int(o)
    d = os.path.join(root, name)
    model = core.read_model(os.path.join(d, "model.xml"), os.path.join(d, "model.bin"))
    compiled = core.compile_model(model, "CPU", CONFIG)
    xdt = np.float32 if act == "f32" else np.float16
    inputs = [load(os.path.join(d, "x.bin"), xdt, tokens * k).reshape(tokens, k)]
    if weights == "inputs":
        groups = k // 128
        packed = load(os.path.join(d, "w.bin"), np.uint8, o * k // 2)
        if swap:
            packed = ((packed >> 4) | (packed << 4)).astype(np.uint8)
        typ = ov.Type.i4 if wtype == "i4" else ov.Type.u4
        inputs.append(ov.Tensor(packed, ov.Shape([o, groups, 128]), typ))
        scales = load(os.path.join(d, "scale.bin"), np.float16, o * groups)
        inputs.append(scales.reshape(o, groups, 1))
    y = np.asarray(compiled(inputs)[0], dtype=np.float64).reshape(tokens, o)
    ref = load(os.path.join(d, "ref.bin"), np.float32, tokens * o).astype(np.float64)
    ref = ref.reshape(tokens, o)
    nmse = float(np.sum((y - ref) ** 2) / max(np.sum(ref**2), 1e-30))
    return nmse, BOUND[act], f"T={tokens} K={k} O={o} x/y {act}, {wtype} {weights}"


def main():
    if len(sys.argv) != 2:
        print("usage: npu_check.py DIR", file=sys.stderr)
        return 2
    root = sys.argv[1]
    core = ov.Core()
    print(f"OpenVINO {ov.get_version()}, CPU runtime, INFERENCE_PRECISION_HINT=f32")
    passed = failed = 0
    u4, i4 = nibble_order(core)
    ok = u4 == [1.0, 2.0] and i4 == [1.0, -1.0]
    print(f"{'ok  ' if ok else 'FAIL'}  4-bit packing: u4 byte 0x21 -> {u4}, i4 byte 0xF1 -> {i4}"
          " (element 0 in the low nibble)")
    passed, failed = passed + ok, failed + (not ok)
    worst = {}
    with open(os.path.join(root, "cases.txt")) as f:
        cases = [line.split() for line in f if line.strip()]
    for fields in cases:
        try:
            nmse, bound, what = run_case(core, root, fields)
        except Exception as e:  # a graph OpenVINO refuses is a failure, reported with its reason
            print(f"FAIL  {fields[0]}: {e}")
            failed += 1
            continue
        ok = nmse <= bound
        worst[fields[4]] = max(worst.get(fields[4], 0.0), nmse)
        print(f"{'ok  ' if ok else 'FAIL'}  {fields[0]:28s} NMSE {nmse:.3e} (bound {bound:.0e}) "
              f"{what}")
        passed, failed = passed + ok, failed + (not ok)
    ok, what = swapped_nibbles_fail(core, root, cases)
    print(f"{'ok  ' if ok else 'FAIL'}  negative control, must exceed the bound: {what}")
    passed, failed = passed + ok, failed + (not ok)
    for act, v in sorted(worst.items()):
        print(f"worst NMSE with {act} activations: {v:.3e}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

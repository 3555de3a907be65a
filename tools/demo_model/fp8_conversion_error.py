#!/usr/bin/env python3
"""How much the GPU fp8 path's NVFP4 -> E4M3 weight conversion adds to an NVFP4 file's error (docs/DEMO_MODEL.md,
run H), per NVFP4 layer, emulated with torch's float8_e4m3fn:

  * today (src/backend/cuda/weight_prepare.cu): each row scaled by amax(row) / 448, then rounded to E4M3;
  * aligned: each row scaled by weight_scale_2 x 2^k (the least k that fits the row), which keeps every value
    m x block_scale with m in {0.5, 1, 2, 4} exact; only m in {1.5, 3, 6} still round.

    python3 tools/demo_model/fp8_conversion_error.py assets/demo-model/flux2-klein-base-demo-nvfp4-mixed.safetensors

Prints the relative L2 error of the converted weights against the NVFP4 values they come from, and the share of
elements converted exactly (in float32, the NVFP4 values computed as the GPU does: block scale x weight_scale_2,
then x the E2M1 magnitude). Reads the BFL NVFP4 layout that nvfp4_export.py writes.
"""
import os
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fp8_path_emulation import e4m3_rows, e4m3_scaled  # noqa: E402
from nvfp4_export import E4M3_MAX, dequantize_nvfp4  # noqa: E402


def main():
    tensors = load_file(sys.argv[1])
    totals = {"today": [0.0, 0.0, 0, 0], "aligned": [0.0, 0.0, 0, 0]}  # squared error, squared norm, exact, all
    for name in sorted(tensors):
        if not name.endswith(".weight") or tensors[name].dtype != torch.uint8:
            continue
        stem = name[:-len(".weight")]
        packed, s2 = tensors[name], tensors[stem + ".weight_scale_2"].float()
        out, inn = packed.shape[0], packed.shape[1] * 2
        w = dequantize_nvfp4(packed, tensors[stem + ".weight_scale"], s2, out, inn)
        amax = w.abs().amax(1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
        converted = {"today": e4m3_rows(w),
                     "aligned": e4m3_scaled(w, s2 * torch.exp2(torch.ceil(torch.log2(amax / (E4M3_MAX * s2)))))}
        line = f"{stem:40s} {out}x{inn}:"
        for key, q in converted.items():
            totals[key][0] += float(((q - w) ** 2).sum())
            totals[key][1] += float((w ** 2).sum())
            totals[key][2] += int((q == w).sum())
            totals[key][3] += w.numel()
            line += f"  {key} {float((q - w).norm() / w.norm()):.4f} ({float((q == w).float().mean()):.0%} exact)"
        print(line)
    print("all layers:",
          ", ".join(f"{k} {(t[0] / t[1]) ** 0.5:.4f} ({t[2] / t[3]:.0%} exact)" for k, t in totals.items()))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""How much the GPU fp8 path's NVFP4 -> E4M3 weight conversion adds to an NVFP4 file's error (docs/DEMO_MODEL.md,
run H), per NVFP4 layer, emulated with torch's float8_e4m3fn:

  * today (src/backend/cuda/weight_prepare.cu): each row scaled by amax(row) / 448, then rounded to E4M3;
  * aligned: each row scaled by weight_scale_2 x 2^k (the least k that fits the row), which keeps every value
    m x block_scale with m in {0.5, 1, 2, 4} exact; only m in {1.5, 3, 6} still round.

    python3 tools/demo_model/fp8_conversion_error.py assets/demo-model/flux2-klein-base-demo-nvfp4-mixed.safetensors

Prints the relative L2 error of the converted weights against the NVFP4 values they come from, and the share of
elements converted exactly. Reads BFL NVFP4 layouts (element 2i in the high nibble, block scales in the 128x4
swizzled order of NVFP4_CHECKPOINTS.md 1.5).
"""
import json
import struct
import sys

import numpy as np
import torch

E2M1 = np.array([0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6], np.float32)


def e4m3(x):
    return torch.from_numpy(np.ascontiguousarray(x)).to(torch.float8_e4m3fn).to(torch.float32).numpy()


def read(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])

    def tensor(name):
        a, b = header[name]["data_offsets"]
        return header[name], raw[8 + n + a:8 + n + b]
    return header, tensor


def nvfp4_values(tensor, stem):
    info, codes = tensor(stem + ".weight")
    rows, half = info["shape"]
    c = np.frombuffer(codes, np.uint8).reshape(rows, half)
    vals = np.empty((rows, half * 2), np.float32)
    vals[:, 0::2], vals[:, 1::2] = E2M1[c >> 4], E2M1[c & 15]
    _, scales = tensor(stem + ".weight_scale")
    flat = torch.frombuffer(bytearray(scales), dtype=torch.float8_e4m3fn).to(torch.float32).numpy()
    cols = half * 2 // 16
    padded = -(-cols // 4) * 4
    r, k = np.arange(rows)[:, None], np.arange(cols)[None, :]
    block = flat[(((r // 128) * (padded // 4) + k // 4) * 32 + r % 32) * 16 + ((r % 128) // 32) * 4 + k % 4]
    _, s2 = tensor(stem + ".weight_scale_2")
    return vals * np.repeat(block, 16, axis=1) * np.frombuffer(s2, np.float32)[0], float(np.frombuffer(s2, np.float32)[0])


def main():
    header, tensor = read(sys.argv[1])
    totals = {"today": [0.0, 0.0], "aligned": [0.0, 0.0]}
    for name in sorted(header):
        if not name.endswith(".weight") or header[name].get("dtype") != "U8":
            continue
        stem = name[:-len(".weight")]
        w, s2 = nvfp4_values(tensor, stem)
        amax = np.abs(w).max(1, keepdims=True)
        amax[amax == 0] = 1
        row = {"today": amax / 448, "aligned": s2 * np.exp2(np.ceil(np.log2(amax / (448 * s2))))}
        line = f"{stem:40s} {w.shape[0]}x{w.shape[1]}:"
        for key, scale in row.items():
            q = e4m3(w / scale) * scale
            totals[key][0] += float(((q - w) ** 2).sum())
            totals[key][1] += float((w ** 2).sum())
            line += f"  {key} {np.linalg.norm(q - w) / np.linalg.norm(w):.4f} ({(q == w).mean():.0%} exact)"
        print(line)
    print("all layers:", ", ".join(f"{k} {(t[0] / t[1]) ** 0.5:.4f}" for k, t in totals.items()))


if __name__ == "__main__":
    main()

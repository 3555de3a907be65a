#!/usr/bin/env python3
"""Emulates, code by code, an FP8 layer with a LoRA branch at real size, the two ways flux2's CUDA backend runs it
(docs/LORA.md, "How a LoRA is applied"), and prints each one's error against the exact float64 layer:

* beside: E4M3 activations (per-token scale) x E4M3 weight (per-channel scale), plus t B^T in BF16, t = x A^T from
  the same E4M3 activations and A's E4M3 rows;
* carried: one GEMM over [x | t] [W | B] (src/quant/lora_fp8_tail.h): x quantized with a headroom (scale times
  --headroom), t = x A^T in float32 from those codes, B's codes fill E4M3's range per column, t's codes use the
  token's scale, grown by a power of two p where they would pass 448 (x's codes divided by p).

Also prints how many tokens needed which p. Synthetic data: x normal with 8 outlier features, W ~ N(0, 0.02^2),
A ~ N(0, 1/K) and B ~ N(0, (0.1 / sqrt(r))^2) (flux2 bench's synthetic LoRA) times --b-scale.

Development tool (numpy, ml_dtypes from PyPI, tools/lora/requirements.txt):
    python3 tools/lora/fp8_tail_emulation.py --k 6144 --n 8192 --rank 32
"""
import argparse
import math

import ml_dtypes
import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k", type=int, default=6144, help="input features")
    ap.add_argument("--n", type=int, default=8192, help="output features (a slice of the layer)")
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--outlier", type=float, default=30.0, help="factor on 8 of x's features")
    ap.add_argument("--b-scale", type=float, default=1.0, help="factor on B (the LoRA's strength)")
    ap.add_argument("--headroom", type=float, default=4.0, help="kLoraFp8TailHeadroom")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    f8, bf = ml_dtypes.float8_e4m3fn, ml_dtypes.bfloat16

    def e4m3(v):
        return np.clip(v, -448, 448).astype(f8).astype(np.float64)

    def bf16(v):
        return v.astype(bf).astype(np.float64)

    def per_row(v, headroom=1.0):  # E4M3 codes with scale headroom * amax / 448 per row
        s = np.abs(v).max(axis=1, keepdims=True) / 448
        s[s == 0] = 1
        s = s * headroom
        return e4m3(v / s), s

    K, N, r = a.k, a.n, a.rank
    x = rng.standard_normal((a.tokens, K))
    x[:, :8] *= a.outlier
    W = rng.standard_normal((N, K)) * 0.02
    A = rng.standard_normal((r, K)) / math.sqrt(K)
    B = rng.standard_normal((N, r)) * 0.1 / math.sqrt(r) * a.b_scale
    exact = x @ W.T + (x @ A.T) @ B.T

    wq, sw = per_row(W)
    xq, sx = per_row(x)
    aq, sa = per_row(bf16(A))
    t = bf16((xq @ aq.T) * sx * sa.T)  # the down-projection's BF16 output
    beside = bf16((xq @ wq.T) * sx * sw.T + t @ bf16(B).T)

    f = (np.abs(B) / (448 * sw)).max(axis=0)  # t_factor
    bq = e4m3(B / (f[None, :] * sw))
    xh, sxh = per_row(x, a.headroom)
    th = ((xh @ aq.T) * sxh * sa.T).astype(np.float32).astype(np.float64)  # the kernel's float32 t
    largest = (np.abs(th) * f[None, :]).max(axis=1, keepdims=True)
    p = np.ones_like(largest)
    while (largest / (sxh * p) > 448).any():
        p[largest / (sxh * p) > 448] *= 2
    xq2, sx2 = e4m3(xh / p), sxh * p
    tq = e4m3(th * f[None, :] / sx2)
    carried = bf16((xq2 @ wq.T + tq @ bq.T) * sx2 * sw.T)

    def rel(v):
        return np.linalg.norm(v - exact) / np.linalg.norm(exact)

    share = np.linalg.norm((x @ A.T) @ B.T) / np.linalg.norm(exact)
    ps = ", ".join(f"p={int(v)}: {int(c)}" for v, c in zip(*np.unique(p, return_counts=True)))
    print(f"K {K} N {N} rank {r} outlier x{a.outlier:g} B x{a.b_scale:g} headroom {a.headroom:g}: "
          f"branch {share:.1%} of the output; "
          f"tokens {ps}; error beside {rel(beside):.2%}, carried {rel(carried):.2%}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch reference timings at the shapes of bench/cuda_ops_bench.cpp (FLUX.2-dev, 1024x1024): torch.matmul in
BF16, torch._scaled_mm in FP8 (row-wise scales like our per-token x per-channel path, and per-tensor), and
scaled_dot_product_attention (cuDNN and flash backends). Median of CUDA-event timings on random data.
Run on the GPU machine by scripts/device-test.sh, in the same call as the C++ benchmarks."""
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

GEMMS = [(4608, 55296, 6144), (4608, 6144, 24576), (4096, 36864, 6144)]  # (m tokens, n out, k in)
ATTENTION = (1, 48, 4608, 128)  # B, H, L, Dh


def median_ms(fn, iters=20, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]


def row(name, shape, ms, flops):
    print(f"{name:<34} {shape:<22} {ms:9.3f} ms {flops / ms / 1e9:8.1f} TFLOP/s", flush=True)


def main():
    dev = torch.device("cuda")
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, cuDNN {torch.backends.cudnn.version()}")
    for m, n, k in GEMMS:
        shape = f"{m}x{n}x{k}"
        x = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
        w = torch.randn(n, k, device=dev, dtype=torch.bfloat16) * 0.05
        flops = 2.0 * m * n * k
        row("torch.matmul bf16", shape, median_ms(lambda: torch.matmul(x, w.t())), flops)
        xq, wq = x.to(torch.float8_e4m3fn), (w * 20).to(torch.float8_e4m3fn)
        sa, sb = torch.ones(m, 1, device=dev), torch.full((1, n), 0.05, device=dev)
        row("torch._scaled_mm fp8 row-wise", shape,
            median_ms(lambda: torch._scaled_mm(xq, wq.t(), scale_a=sa, scale_b=sb, out_dtype=torch.bfloat16)), flops)
        one = torch.ones((), device=dev)
        row("torch._scaled_mm fp8 per-tensor", shape,
            median_ms(lambda: torch._scaled_mm(xq, wq.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)), flops)
        del x, w, xq, wq
    b, h, l, d = ATTENTION
    q, k, v = (torch.randn(b, h, l, d, device=dev, dtype=torch.bfloat16) for _ in range(3))
    flops = 4.0 * b * h * l * l * d
    for name, backend in (("sdpa cuDNN", SDPBackend.CUDNN_ATTENTION), ("sdpa flash", SDPBackend.FLASH_ATTENTION)):
        with sdpa_kernel(backend):
            row(name, f"B{b} H{h} L{l} Dh{d}", median_ms(lambda: F.scaled_dot_product_attention(q, k, v)), flops)


if __name__ == "__main__":
    main()

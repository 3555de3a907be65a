#!/usr/bin/env python3
"""PyTorch BF16 baseline: one FLUX.2 denoising step (transformer forward) at real dimensions with random weights.

A minimal re-statement of diffusers' Flux2Transformer2DModel forward (FLUX2_SPEC.md §1.3) in plain PyTorch, for the
device machine, where diffusers is not installed. Same op order and dtypes as diffusers in bf16: cuBLAS GEMMs,
F.scaled_dot_product_attention, fp32 norm math. Prints one line per model and resolution:
    torch-bf16 <model> <res> <s/step> <TFLOP/s> <peak GB>
Usage: python3 bench/torch_flux2_step.py --model dev --res 1024 [--steps 5 --warmup 2]
"""
import argparse
import math

import torch
import torch.nn.functional as F

CONFIGS = {  # D = heads * 128, double blocks, single blocks, context dim, guidance embedding
    "dev": (48, 8, 48, 15360, True),
    "klein-9b": (32, 8, 24, 12288, False),
    "klein-4b": (24, 5, 20, 7680, False),
}


def lin(out, inp, gain=1.0):
    return torch.randn(out, inp, device="cuda", dtype=torch.bfloat16) * (gain / math.sqrt(inp))


def gain(n):
    return 1.0 + 0.1 * torch.randn(n, device="cuda", dtype=torch.bfloat16)


class Model:
    def __init__(self, heads, n_double, n_single, ctx, guidance):
        D, M, Dh = heads * 128, heads * 128 * 3, 128
        self.D, self.M, self.H, self.ctx, self.guidance = D, M, heads, ctx, guidance
        self.x_emb, self.ctx_emb = lin(D, 128), lin(D, ctx)
        self.t1, self.t2 = lin(D, 256), lin(D, D)
        self.g1, self.g2 = (lin(D, 256), lin(D, D)) if guidance else (None, None)
        self.mod_img, self.mod_txt, self.mod_single = lin(6 * D, D, 0.2), lin(6 * D, D, 0.2), lin(3 * D, D, 0.2)
        self.double = [dict(qkv=lin(3 * D, D), out=lin(D, D), add_qkv=lin(3 * D, D), add_out=lin(D, D),
                            ff_in=lin(2 * M, D), ff_out=lin(D, M), ffc_in=lin(2 * M, D), ffc_out=lin(D, M),
                            nq=gain(Dh), nk=gain(Dh), naq=gain(Dh), nak=gain(Dh)) for _ in range(n_double)]
        self.single = [dict(p=lin(3 * D + 2 * M, D), out=lin(D, D + M), nq=gain(Dh), nk=gain(Dh))
                       for _ in range(n_single)]
        self.norm_out, self.proj_out = lin(2 * D, D, 0.2), lin(128, D)


def rms(x, w):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(x.dtype) * w


def rope(x, cos, sin):  # x [B, H, L, Dh], interleaved pairs; cos/sin [L, Dh/2] fp32
    x0, x1 = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack([x0 * cos - x1 * sin, x1 * cos + x0 * sin], -1).flatten(-2).to(x.dtype)


def ln_mod(x, shift, scale):
    return F.layer_norm(x, (x.shape[-1],), eps=1e-6) * (1 + scale) + shift


def heads(x, H):  # [B, L, H*Dh] -> [B, H, L, Dh]
    return x.unflatten(-1, (H, -1)).transpose(1, 2)


def swiglu(x):
    a, b = x.chunk(2, -1)
    return F.silu(a) * b


def temb_of(t, w1, w2):
    half = 128
    freqs = torch.exp(-math.log(10000) * torch.arange(half, device="cuda", dtype=torch.float32) / half)
    arg = t.float()[:, None] * 1000 * freqs[None]
    emb = torch.cat([torch.cos(arg), torch.sin(arg)], -1).to(torch.bfloat16)
    return F.linear(F.silu(F.linear(emb, w1)), w2)


def forward(m, x, c, t, g, cos, sin):
    H, D, Lt = m.H, m.D, c.shape[1]
    temb = temb_of(t, m.t1, m.t2)
    if m.guidance:
        temb = temb + temb_of(g, m.g1, m.g2)
    act = F.silu(temb)[:, None]
    mi, mt, ms = F.linear(act, m.mod_img).chunk(6, -1), F.linear(act, m.mod_txt).chunk(6, -1), \
        F.linear(act, m.mod_single).chunk(3, -1)
    x, c = F.linear(x, m.x_emb), F.linear(c, m.ctx_emb)
    for b in m.double:
        nx, nc = ln_mod(x, mi[0], mi[1]), ln_mod(c, mt[0], mt[1])
        q, k, v = (heads(z, H) for z in F.linear(nx, b["qkv"]).chunk(3, -1))
        qc, kc, vc = (heads(z, H) for z in F.linear(nc, b["add_qkv"]).chunk(3, -1))
        q, k = torch.cat([rms(qc, b["naq"]), rms(q, b["nq"])], 2), torch.cat([rms(kc, b["nak"]), rms(k, b["nk"])], 2)
        o = F.scaled_dot_product_attention(rope(q, cos, sin), rope(k, cos, sin), torch.cat([vc, v], 2))
        o = o.transpose(1, 2).flatten(2)
        x = x + mi[2] * F.linear(o[:, Lt:], b["out"])
        x = x + mi[5] * F.linear(swiglu(F.linear(ln_mod(x, mi[3], mi[4]), b["ff_in"])), b["ff_out"])
        c = c + mt[2] * F.linear(o[:, :Lt], b["add_out"])
        c = c + mt[5] * F.linear(swiglu(F.linear(ln_mod(c, mt[3], mt[4]), b["ffc_in"])), b["ffc_out"])
    h = torch.cat([c, x], 1)
    for b in m.single:
        p = F.linear(ln_mod(h, ms[0], ms[1]), b["p"])
        q, k, v = (heads(z, H) for z in p[..., :3 * D].chunk(3, -1))
        o = F.scaled_dot_product_attention(rope(rms(q, b["nq"]), cos, sin), rope(rms(k, b["nk"]), cos, sin), v)
        o = o.transpose(1, 2).flatten(2)
        h = h + ms[2] * F.linear(torch.cat([o, swiglu(p[..., 3 * D:])], -1), b["out"])
    h = h[:, Lt:]
    scale, shift = F.linear(act, m.norm_out).chunk(2, -1)
    return F.linear(ln_mod(h, shift, scale), m.proj_out)


def rope_tables(Lt, side):
    ids = torch.zeros(Lt + side * side, 4, device="cuda")
    ids[:Lt, 3] = torch.arange(Lt, device="cuda")
    r = torch.arange(side * side, device="cuda")
    ids[Lt:, 1], ids[Lt:, 2] = (r // side).float(), (r % side).float()
    omega = 1.0 / 2000 ** (torch.arange(0, 32, 2, device="cuda", dtype=torch.float64) / 32)
    ang = torch.cat([ids[:, a:a + 1].double() * omega for a in range(4)], -1)  # [L, 64]
    return torch.cos(ang).float(), torch.sin(ang).float()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="dev", choices=CONFIGS)
    ap.add_argument("--res", default="1024")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--text-tokens", type=int, default=512)
    a = ap.parse_args()
    torch.manual_seed(0)
    heads_, nd, ns, ctx, guidance = CONFIGS[a.model]
    with torch.no_grad():
        m = Model(heads_, nd, ns, ctx, guidance)
        for res in [int(r) for r in a.res.split(",")]:
            side, Lt = res // 16, a.text_tokens
            x = torch.randn(1, side * side, 128, device="cuda", dtype=torch.bfloat16)
            c = torch.randn(1, Lt, ctx, device="cuda", dtype=torch.bfloat16)
            t, g = torch.full((1,), 0.5, device="cuda"), torch.full((1,), 4.0, device="cuda")
            cos, sin = rope_tables(Lt, side)
            for _ in range(a.warmup):
                forward(m, x, c, t, g, cos, sin)
            times = []
            for _ in range(a.steps):
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record()
                forward(m, x, c, t, g, cos, sin)
                e.record()
                torch.cuda.synchronize()
                times.append(s.elapsed_time(e) / 1000)
            med = sorted(times)[len(times) // 2]
            L, D = side * side + Lt, heads_ * 128
            flops = (2 * 13 * D * D * L + 4 * L * L * D) * (nd + ns)
            print(f"torch-bf16 {a.model} {res} {med:.4f} s/step {flops / med / 1e12:.1f} TFLOP/s "
                  f"peak {torch.cuda.max_memory_allocated() / 1e9:.2f} GB", flush=True)


if __name__ == "__main__":
    main()

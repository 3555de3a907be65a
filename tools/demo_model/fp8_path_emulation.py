#!/usr/bin/env python3
"""Draws the demo model's evaluation prompts with the GPU fp8 path's arithmetic on its NVFP4 layers emulated in
PyTorch, on any machine, so that `flux2 eval --check-images` can tell which part of that path costs the score
(docs/DEMO_MODEL.md, run H). On the GPU, the fp8 path runs the NVFP4-mixed file's 16 NVFP4 linears as E4M3 GEMMs:
the NVFP4 weights converted to E4M3 with one scale per output row (amax / 448), the BF16 activations quantized to
E4M3 with one scale per token (amax / 448). Its other layers stay BF16, and its attention is FP8 (not emulated
here). Stages, each on top of the one before:

  bf16       nothing emulated: the diffusers transformer as stored (the sampler's own baseline)
  nvfp4      the NVFP4 layers' weights as the file holds them (quantized from the bf16 ones as train.py exports)
  e4m3-w     those weights rounded to E4M3 per row
  e4m3-wa    and their inputs rounded to BF16, then to E4M3 per token

    python3 tools/demo_model/fp8_path_emulation.py --model assets/demo-model --stage e4m3-wa --out /tmp/e4m3-wa
    build/flux2 eval --check-images /tmp/e4m3-wa

The sampler is train.py's (50 steps, true CFG 4, f32 on the CPU by default).
"""
import argparse
import json
import os
import sys
from types import SimpleNamespace

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from captions import load_tokenizer  # noqa: E402
from common import REPO, log, select_device, write_sheet  # noqa: E402
from models import load_previous  # noqa: E402
from nvfp4_export import E4M3_MAX, dequantize_nvfp4, nvfp4_layers, quantize_nvfp4  # noqa: E402
from stages import sample  # noqa: E402

STAGES = ["bf16", "nvfp4", "e4m3-w", "e4m3-wa"]


def e4m3_scaled(x, scale):
    """x rounded to E4M3 under `scale` (broadcast against x), back in float32."""
    return (x / scale).to(torch.float8_e4m3fn).float() * scale


def e4m3_rows(x):
    """x [..., K] rounded to E4M3 with one scale per row (amax / 448), as the GPU's fp8 path scales weights and
    activations."""
    amax = x.abs().amax(-1, keepdim=True)
    return e4m3_scaled(x, torch.where(amax > 0, amax / E4M3_MAX, torch.ones_like(amax)))


def emulate(dit, stage):
    level = STAGES.index(stage) - 1
    if level < 0:
        return
    modules = dict(dit.named_modules())
    layers = nvfp4_layers(dit.config.num_layers, dit.config.num_single_layers)
    for name, _ in layers.values():
        lin = modules[name]
        w = lin.weight.data.to(torch.bfloat16).float()
        out, inn = w.shape
        codes, scales, ws2 = quantize_nvfp4(w)
        w = dequantize_nvfp4(codes, scales, ws2, out, inn)
        if level >= 1:
            w = e4m3_rows(w)
        lin.weight.data.copy_(w)
        if level >= 2:
            lin.register_forward_pre_hook(lambda _m, args: (e4m3_rows(args[0].to(torch.bfloat16).float()),))
    log(f"{stage}: {len(layers)} NVFP4 layers emulated")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "assets", "demo-model"))
    ap.add_argument("--stage", required=True, choices=STAGES)
    ap.add_argument("--out", required=True, help="folder for one PNG per prompt (<id>.png) and sheet.png")
    ap.add_argument("--prompts", default=os.path.join(REPO, "assets", "demo_eval_prompts.json"))
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    device = select_device(args.device)
    torch.manual_seed(0)
    settings = SimpleNamespace(decoder_adapt=False, freeze_text_encoder=True, max_sequence_length=512)
    vae, dit, te = load_previous(settings, args.model, announce=False)
    emulate(dit, args.stage)
    tokenizer = load_tokenizer(os.path.join(REPO, "assets", "qwen3-tokenizer"))
    prompts = json.load(open(args.prompts))["prompts"]
    with torch.no_grad():
        imgs = sample(dit.to(device).eval(), te.to(device).eval(), vae.to(device).eval(), tokenizer,
                      [p["prompt"] for p in prompts], [p["seed"] for p in prompts], settings, device, args.steps)
    os.makedirs(args.out, exist_ok=True)
    # write_sheet puts each image as <folder of the sheet>/<stem>/<id>.png: the sheet's stem is args.out itself.
    write_sheet(os.path.abspath(args.out) + ".png", imgs, ids=[p["id"] for p in prompts])
    log(f"wrote {len(imgs)} images into {args.out} (sheet {args.out}.png)")


if __name__ == "__main__":
    main()

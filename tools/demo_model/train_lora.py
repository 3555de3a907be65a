#!/usr/bin/env python3
"""Trains the demo LoRA on the demo model (docs/DEMO_MODEL.md, "The demo LoRA"): every background becomes horizontal
stripes, with no trigger word, so that `flux2 generate --lora` shows a visible change on any scene prompt.

The base (transformer, text encoder, VAE) stays fixed; rank-R branches y += (alpha/R) * B(A x) are trained on the
transformer's block linears and its output layer, with the flow-matching loss of train.py on scenes whose
backgrounds are striped (scenes.render(..., stripes=True)). The result is written in the four layouts of
shared/golden/lora (diffusers/PEFT, BFL / ai-toolkit, PEFT-saved BFL names, kohya), all describing the same math:

    python3 tools/demo_model/train_lora.py --base assets/demo-model --out /tmp/demo-lora --time-budget-s 150

OUT/demo-stripes-lora-{diffusers,bfl,peft-bfl,kohya}.safetensors, OUT/check/lora_preview.png (top row without the
LoRA, bottom row with it, same seeds), OUT/check/lora_log.json.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from captions import load_tokenizer, make_dataset, tokenize  # noqa: E402
from common import REPO, T0, log, select_device, write_json, write_sheet  # noqa: E402
from latent_layout import pack  # noqa: E402
from models import load_previous  # noqa: E402
from stages import encode_dataset, normalize_latents, sample, train_transformer  # noqa: E402


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default=os.path.join(REPO, "assets", "demo-model"), help="the demo model folder")
    ap.add_argument("--out", required=True, help="output folder (its LoRA files are replaced)")
    ap.add_argument("--time-budget-s", type=float, default=150, help="wall clock for everything, from the start")
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--alpha", type=float, default=4.0, help="scale = alpha / rank; alpha = rank keeps the BFL files "
                    "(alpha folded into lora_A) bit-equal to the diffusers one")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--ema", type=float, default=0.99)
    ap.add_argument("--caption-dropout", type=float, default=0.1)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--num-scenes", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--preview-prompts", type=int, default=8)
    ap.add_argument("--preview-steps", type=int, default=50)
    return ap.parse_args(argv)


class LoraLinear(torch.nn.Module):
    """A frozen nn.Linear plus a trainable low-rank branch; `enabled` switches the branch (for the preview)."""

    def __init__(self, base, rank, alpha, generator):
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        # PEFT's start: A random, B zero, so the adapted model starts as the base.
        self.lora_A = torch.nn.Parameter(torch.randn(rank, base.in_features, generator=generator)
                                         / math.sqrt(base.in_features))
        self.lora_B = torch.nn.Parameter(torch.zeros(base.out_features, rank))
        self.enabled = True

    def forward(self, x):
        y = self.base(x)
        if self.enabled:
            y = y + self.scale * F.linear(F.linear(x, self.lora_A.to(x.dtype)), self.lora_B.to(x.dtype))
        return y


def bfl_name(module):
    """(BFL layer, row part) of a diffusers module name: q/k/v are the thirds 0/1/2 of the fused qkv rows."""
    p = module.split(".")
    if p[0] == "proj_out":
        return "final_layer.linear", None
    n = p[1]
    if p[0] == "single_transformer_blocks":
        return f"single_blocks.{n}." + {"to_qkv_mlp_proj": "linear1", "to_out": "linear2"}[p[3]], None
    tail = ".".join(p[2:])
    qkv = {"attn.to_q": ("img_attn.qkv", 0), "attn.to_k": ("img_attn.qkv", 1), "attn.to_v": ("img_attn.qkv", 2),
           "attn.add_q_proj": ("txt_attn.qkv", 0), "attn.add_k_proj": ("txt_attn.qkv", 1),
           "attn.add_v_proj": ("txt_attn.qkv", 2)}
    if tail in qkv:
        layer, part = qkv[tail]
        return f"double_blocks.{n}.{layer}", part
    return f"double_blocks.{n}." + {"attn.to_out.0": "img_attn.proj", "attn.to_add_out": "txt_attn.proj",
                                    "ff.linear_in": "img_mlp.0", "ff.linear_out": "img_mlp.2",
                                    "ff_context.linear_in": "txt_mlp.0", "ff_context.linear_out": "txt_mlp.2"}[tail], None


def target_modules(dit):
    """Every linear of the blocks and the output layer (the embedders and modulations keep the base)."""
    return [n for n, m in dit.named_modules() if isinstance(m, torch.nn.Linear)
            and (n.startswith(("transformer_blocks.", "single_transformer_blocks.")) or n == "proj_out")]


def attach(dit, rank, alpha, seed):
    g = torch.Generator().manual_seed(seed)
    loras = {}
    for name in target_modules(dit):
        parent_name, _, child = name.rpartition(".")
        parent = dit.get_submodule(parent_name) if parent_name else dit
        lora = LoraLinear(getattr(parent, child), rank, alpha, g)
        setattr(parent, child, lora)
        loras[name] = lora
    return loras


def layouts(loras, rank, alpha):
    """The four files' tensors (bf16) and the diffusers file's metadata."""
    bf = torch.bfloat16
    diffusers = {}
    for name, lora in loras.items():
        diffusers[f"transformer.{name}.lora_A.weight"] = lora.lora_A.detach().to(bf).cpu().contiguous()
        diffusers[f"transformer.{name}.lora_B.weight"] = lora.lora_B.detach().to(bf).cpu().contiguous()
    config = {"r": rank, "lora_alpha": alpha, "target_modules": sorted(loras), "bias": "none", "use_dora": False,
              "use_rslora": False, "lora_dropout": 0.0, "peft_type": "LORA", "init_lora_weights": True,
              "fan_in_fan_out": False}
    metadata = {"format": "pt", "lora_adapter_metadata": json.dumps({f"transformer.{k}": v for k, v in
                                                                      config.items()}, indent=2, sort_keys=True)}
    # BFL: q/k/v join into one fused LoRA of rank 3R: A stacked, B block-diagonal (rows q, k, v), alpha/rank folded
    # into A (exact in bf16 when alpha/rank is a power of two).
    fused = {}
    for name, lora in loras.items():
        layer, part = bfl_name(name)
        a = lora.lora_A.detach().float().cpu() * lora.scale
        b = lora.lora_B.detach().float().cpu()
        if part is None:
            fused[layer] = (a, b)
            continue
        parts = fused.setdefault(layer, [None, None, None])
        parts[part] = (a, b)
    bfl = {}
    for layer, ab in fused.items():
        if isinstance(ab, list):
            a = torch.cat([p[0] for p in ab])
            b = torch.block_diag(*[p[1] for p in ab])
        else:
            a, b = ab
        bfl[layer] = (a.to(bf).contiguous(), b.to(bf).contiguous())
    files = {"diffusers": (diffusers, metadata)}
    files["bfl"] = ({f"diffusion_model.{k}.lora_{n}.weight": t for k, (a, b) in bfl.items()
                     for n, t in (("A", a), ("B", b))}, {"format": "pt"})
    files["peft-bfl"] = ({f"base_model.model.{k}.lora_{n}.weight": t for k, (a, b) in bfl.items()
                          for n, t in (("A", a), ("B", b))}, {"format": "pt"})
    kohya = {}
    for k, (a, b) in bfl.items():
        key = "lora_unet_" + k.replace(".", "_")
        kohya[f"{key}.lora_down.weight"] = a
        kohya[f"{key}.lora_up.weight"] = b
        kohya[f"{key}.alpha"] = torch.tensor(float(a.shape[0]), dtype=bf)  # scale already in A: alpha = rank
    files["kohya"] = (kohya, {"format": "pt"})
    return files


def main(argv=None):
    from safetensors.torch import save_file
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    workers = args.workers or os.cpu_count() or 1
    logd = {"args": vars(args), "command": " ".join(sys.argv)}
    log("settings:", json.dumps(vars(args)))
    tokenizer_dir = os.path.join(REPO, "assets", "qwen3-tokenizer")
    images, captions, ids, mask = make_dataset(args.num_scenes, args.seed, workers, tokenizer_dir, 512,
                                               stripes=True)
    log(f"rendered {len(captions)} striped scenes with {workers} workers")
    tokenizer = load_tokenizer(tokenizer_dir)
    eids, emask = tokenize(tokenizer, [""], 512)
    device = select_device(args.device)
    base_args = argparse.Namespace(max_sequence_length=512, freeze_text_encoder=True, compile=False,
                                   batch=args.batch, lr=args.lr, warmup=args.warmup, ema=args.ema,
                                   caption_dropout=args.caption_dropout, max_steps=args.max_steps, seed=args.seed,
                                   low_noise_fraction=0.5, short_text_fraction=0.0, short_text_tokens=512)
    vae, dit, te = load_previous(base_args, args.base, announce=False)
    log(f"base model {args.base}: VAE, transformer and text encoder stay fixed")
    vae.to(device)
    lat = pack(normalize_latents(vae, encode_dataset(vae, torch.from_numpy(images).to(device), device)))
    lat = lat.to(torch.bfloat16)
    dit.requires_grad_(False)
    loras = attach(dit, args.rank, args.alpha, args.seed + 1)
    params = [p for lo in loras.values() for p in (lo.lora_A, lo.lora_B)]
    log(f"LoRA rank {args.rank} on {len(loras)} linears: {sum(p.numel() for p in params) / 1e3:.1f} k parameters")
    empty = (torch.from_numpy(eids[0]), torch.from_numpy(emask[0]))
    reserve = max(10.0, 0.1 * args.time_budget_s)
    train_transformer(base_args, dit, te, lat, torch.from_numpy(ids), torch.from_numpy(mask), empty, device,
                      T0 + args.time_budget_s - reserve, logd, params=params, stage="lora")

    os.makedirs(os.path.join(args.out, "check"), exist_ok=True)
    for fmt, (tensors, metadata) in layouts(loras, args.rank, args.alpha).items():
        path = os.path.join(args.out, f"demo-stripes-lora-{fmt}.safetensors")
        save_file(tensors, path, metadata=metadata)
        log(f"wrote {path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")
    if args.preview_prompts:
        evals = json.load(open(os.path.join(REPO, "assets", "demo_eval_prompts.json")))["prompts"]
        chosen = evals[:args.preview_prompts]
        prompts, seeds = [p["prompt"] for p in chosen], [p["seed"] for p in chosen]
        sample_args = argparse.Namespace(max_sequence_length=512)
        rows = []
        for enabled in (False, True):
            for lo in loras.values():
                lo.enabled = enabled
            rows.append(sample(dit, te, vae, tokenizer, prompts, seeds, sample_args, device, args.preview_steps))
        write_sheet(os.path.join(args.out, "check", "lora_preview.png"), np.concatenate(rows), cols=len(prompts))
        log("wrote check/lora_preview.png (top: the base, bottom: with the LoRA)")
    logd["total_seconds"] = time.time() - T0
    write_json(os.path.join(args.out, "check", "lora_log.json"), logd)
    log("done")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Train the flux2.cpp demo model (docs/DEMO_MODEL.md): a small FLUX.2 klein-base pipeline in the real
architectures, on the procedural scenes of scenes.py, within a wall-clock budget.

Stages (one process, one GPU):
  0. data: --num-scenes scenes rendered by worker processes (scenes.render_seed), captions tokenized with the real
     Qwen3 tokenizer exactly as Flux2KleinPipeline does (chat template, right padding to --max-sequence-length);
  1. VAE: AutoencoderKLFlux2 (32 latent channels), L1 + L2 reconstruction; then the latent BatchNorm statistics
     (bn.running_mean / running_var over the patchified 128-channel latents of the whole data set), which the
     pipelines use to normalize latents;
  2. transformer: Flux2Transformer2DModel, klein style (no guidance embedding), rectified flow (x_s = (1-s) x0 + s e,
     target e - x0, s from a logit-normal shifted like the 128x128 inference schedule), 10% caption dropout for true
     CFG, trained together with a small Qwen3ForCausalLM text encoder (hidden layers 9, 18, 27 stacked, as the
     klein pipeline does); EMA weights are exported;
  3. export: a diffusers folder (model_index.json, transformer/, vae/, text_encoder/, tokenizer/, scheduler/), the
     transformer also as a BFL NVFP4-mixed file with calibrated input scales, a preview sheet and train_log.json.

    python3 tools/demo_model/train.py --out /tmp/demo-model --time-budget-s 420
    python3 tools/demo_model/train.py --out /tmp/demo-model-2 --resume /tmp/demo-model --time-budget-s 420
    python3 tools/demo_model/train.py --out /tmp/demo-cpu --time-budget-s 60 --num-scenes 256 --batch 4 --device cpu
    python3 tools/demo_model/train.py --nvfp4-selftest tests/data/demo/nvfp4_python.safetensors
"""
import argparse
import gzip
import json
import math
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import scenes  # noqa: E402

T0 = time.time()
TEXT_LAYERS = (9, 18, 27)  # Flux2KleinPipeline's text_encoder_out_layers
NVFP4_FILE = "flux2-klein-base-demo-nvfp4-mixed.safetensors"
E4M3_MAX, E2M1_MAX = 448.0, 6.0


def log(*parts):
    print(f"[{time.time() - T0:7.1f}s]", *parts, flush=True)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder (replaced)")
    ap.add_argument("--time-budget-s", type=float, default=420, help="wall clock for everything, from the start")
    ap.add_argument("--vae-fraction", type=float, default=0.25, help="share of the budget for the VAE stage")
    ap.add_argument("--reserve-s", type=float, default=0, help="seconds kept for the export (0: 8%% of the budget, "
                    "at least 15)")
    ap.add_argument("--seed", type=int, default=20261201)
    ap.add_argument("--device", default="auto", help="auto, cuda or cpu")
    ap.add_argument("--num-scenes", type=int, default=100000, help="distinct training scenes")
    ap.add_argument("--workers", type=int, default=0, help="rendering processes (0: all cores)")
    ap.add_argument("--tokenizer", default=os.path.join(REPO, "assets", "qwen3-tokenizer"))
    ap.add_argument("--max-sequence-length", type=int, default=512, help="text tokens, as flux2's default")
    # VAE
    ap.add_argument("--vae-channels", default="32,64,64,64", help="block_out_channels")
    ap.add_argument("--vae-batch", type=int, default=128)
    ap.add_argument("--vae-lr", type=float, default=1e-3)
    ap.add_argument("--vae-layers", type=int, default=1, help="layers_per_block")
    ap.add_argument("--vae-shape-weight", type=float, default=8.0,
                    help="extra reconstruction weight on shape pixels and their rims (0: plain L1 + L2)")
    # transformer
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--double-blocks", type=int, default=2)
    ap.add_argument("--single-blocks", type=int, default=4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--caption-dropout", type=float, default=0.1)
    ap.add_argument("--low-noise-fraction", type=float, default=0.5,
                    help="share of samples whose noise level is uniform in (0, 1) instead of the shifted logit-normal "
                    "(which puts 2%% of them below sigma 0.4, where a few-step sampler's last step decides the "
                    "shapes' corners)")
    ap.add_argument("--shape-weight", type=float, default=4.0,
                    help="the transformer's loss on a latent token weighs 1 + this x the share of its pixels on or "
                    "next to a shape (0: a plain mean)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop the transformer stage after this many steps")
    ap.add_argument("--resume", help="an earlier output folder: keep its VAE, train its transformer and text "
                    "encoder further for the whole budget (architecture flags come from it)")
    # text encoder
    ap.add_argument("--te-hidden", type=int, default=16)
    ap.add_argument("--te-layers", type=int, default=28)
    ap.add_argument("--freeze-text-encoder", action="store_true",
                    help="keep the text encoder fixed (random, or as --resume left it); every caption is then "
                    "encoded once before training, and the steps run the transformer only")
    ap.add_argument("--decoder-adapt", action="store_true",
                    help="with --resume: keep the transformer and text encoder, and fine-tune the VAE decoder on the "
                         "transformer's own samples for the budget (adapt_decoder)")
    ap.add_argument("--decoder-lr", type=float, default=2e-4)
    ap.add_argument("--decoder-batch", type=int, default=128)
    ap.add_argument("--decoder-max-sigma", type=float, default=0.6,
                    help="the samples start from the training latents noised up to this sigma")
    ap.add_argument("--decoder-steps", type=int, default=4, help="Euler steps of those samples (true CFG 4)")
    ap.add_argument("--decoder-clean-fraction", type=float, default=0.25,
                    help="share of each batch decoded from the clean latents (keeps the reconstructions)")
    # preview
    ap.add_argument("--preview-prompts", type=int, default=40, help="eval prompts drawn into preview.png (0: none)")
    ap.add_argument("--preview-steps", type=int, default=50)
    ap.add_argument("--compile", action="store_true", help="torch.compile the transformer (costs compile time)")
    return ap.parse_args(argv)


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer and prompt template (Flux2KleinPipeline._get_qwen3_prompt_embeds)

def load_tokenizer(folder):
    from transformers import AutoTokenizer
    tmp = tempfile.mkdtemp(prefix="flux2-demo-tok-")
    with gzip.open(os.path.join(folder, "tokenizer.json.gz"), "rb") as f, \
            open(os.path.join(tmp, "tokenizer.json"), "wb") as g:
        shutil.copyfileobj(f, g)
    shutil.copy(os.path.join(folder, "tokenizer_config.json"), tmp)
    return AutoTokenizer.from_pretrained(tmp)


def template(prompt):
    return f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def check_template(tokenizer):
    p = "a small red circle on the left, on a yellow background"
    ref = tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True,
                                        enable_thinking=False)
    if ref != template(p):
        raise SystemExit(f"chat template mismatch:\n{ref!r}\n{template(p)!r}")


def tokenize(tokenizer, prompts, max_len):
    enc = tokenizer([template(p) for p in prompts], padding="max_length", truncation=True, max_length=max_len,
                    return_tensors="np")
    return enc["input_ids"].astype(np.int32), enc["attention_mask"].astype(np.int8)


# ---------------------------------------------------------------------------------------------------------------
# Data

_WORKER = {}


def _init_worker(tokenizer_dir, max_len, stripes):
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _WORKER["tokenizer"] = load_tokenizer(tokenizer_dir)
    _WORKER["max_len"] = max_len
    _WORKER["stripes"] = stripes


def _render_chunk(args):
    start, count = args
    imgs = np.empty((count, scenes.IMAGE_SIZE, scenes.IMAGE_SIZE, 3), dtype=np.uint8)
    caps = []
    for i in range(count):
        imgs[i], cap = scenes.render_seed(start + i, stripes=_WORKER["stripes"])
        caps.append(cap)
    ids, mask = tokenize(_WORKER["tokenizer"], caps, _WORKER["max_len"])
    return imgs, caps, ids, mask


def make_dataset(n, seed, workers, tokenizer_dir, max_len, stripes=False):
    """Scenes seed*1000 + i for i < n, rendered (with striped backgrounds if `stripes`) and tokenized by `workers`
    forked processes."""
    base = seed * 1000
    chunk = 500
    jobs = [(base + s, min(chunk, n - s)) for s in range(0, n, chunk)]
    imgs, caps, ids, mask = [], [], [], []
    ctx = mp.get_context("fork")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(tokenizer_dir, max_len, stripes)) as pool:
        for a, c, i, m in pool.imap(_render_chunk, jobs):
            imgs.append(a)
            caps.extend(c)
            ids.append(i)
            mask.append(m)
    return np.concatenate(imgs), caps, np.concatenate(ids), np.concatenate(mask)


# ---------------------------------------------------------------------------------------------------------------
# Latent layout (FLUX2_SPEC.md 2.3)

def patchify(z):  # [B, 32, 2h, 2w] -> [B, 128, h, w], channel = c*4 + py*2 + px
    b, c, h2, w2 = z.shape
    return z.view(b, c, h2 // 2, 2, w2 // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, c * 4, h2 // 2, w2 // 2)


def unpatchify(z):  # inverse of patchify
    b, c4, h, w = z.shape
    return z.reshape(b, c4 // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3).reshape(b, c4 // 4, h * 2, w * 2)


def pack(z):  # [B, C, h, w] -> [B, h*w, C]
    return z.flatten(2).transpose(1, 2)


def unpack(x, h, w):
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)


def image_ids(h, w, device):
    hh, ww = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ids = torch.stack([torch.zeros_like(hh), hh, ww, torch.zeros_like(hh)], -1).reshape(-1, 4)
    return ids.to(device)


def text_ids(n, device):
    ids = torch.zeros(n, 4, dtype=torch.long)
    ids[:, 3] = torch.arange(n)
    return ids.to(device)


def empirical_mu(image_seq_len, num_steps):  # compute_empirical_mu of the FLUX.2 pipelines
    a1, b1 = 8.73809524e-05, 1.89833333
    a2, b2 = 0.00016927, 0.45666666
    if image_seq_len > 4300:
        return a2 * image_seq_len + b2
    m200 = a2 * image_seq_len + b2
    m10 = a1 * image_seq_len + b1
    a = (m200 - m10) / 190.0
    return a * num_steps + (m200 - 200.0 * a)


def shift_sigma(s, mu):
    return math.exp(mu) / (math.exp(mu) + (1.0 / s - 1.0))


# ---------------------------------------------------------------------------------------------------------------
# Models

def build_text_encoder(args, used_ids):
    from transformers import Qwen3Config, Qwen3ForCausalLM
    cfg = Qwen3Config(vocab_size=151936, hidden_size=args.te_hidden, intermediate_size=3 * args.te_hidden,
                      num_hidden_layers=args.te_layers, num_attention_heads=2, num_key_value_heads=1,
                      head_dim=args.te_hidden // 2, rms_norm_eps=1e-6, max_position_embeddings=40960,
                      rope_parameters={"rope_theta": 1000000.0, "rope_type": "default"}, tie_word_embeddings=True,
                      attn_implementation="sdpa")
    te = Qwen3ForCausalLM(cfg)
    with torch.no_grad():
        # transformers' std 0.02 suits wide models; at width 16 it leaves every layer near the identity, so the 450
        # padding positions (which the transformer attends to) would carry almost nothing of the prompt. At
        # 0.5 / sqrt(fan_in) the causal attention mixes the prompt into them from the first step (8% of their norm
        # differs between two prompts that differ in one colour word, instead of 0.3%).
        g = torch.Generator().manual_seed(args.seed + 6)
        for mod in te.model.layers.modules():
            if isinstance(mod, torch.nn.Linear):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g) * (0.5 / math.sqrt(mod.in_features)))
    # Rows of tokens the captions never use stay zero: an unknown word then adds nothing, and the file compresses.
    with torch.no_grad():
        emb = te.model.embed_tokens.weight
        emb.zero_()
        g = torch.Generator().manual_seed(args.seed + 7)
        emb[used_ids] = torch.randn(len(used_ids), emb.shape[1], generator=g)
    return te


def encode_text(te, ids, mask):
    out = te.model(input_ids=ids, attention_mask=mask, output_hidden_states=True, use_cache=False)
    hs = torch.stack([out.hidden_states[k] for k in TEXT_LAYERS], dim=1)  # [B, 3, L, H]
    b, n, l, h = hs.shape
    return hs.permute(0, 2, 1, 3).reshape(b, l, n * h)


def build_transformer(args):
    from diffusers import Flux2Transformer2DModel
    axes = args.head_dim // 4
    t = Flux2Transformer2DModel(patch_size=1, in_channels=128, num_layers=args.double_blocks,
                                num_single_layers=args.single_blocks, attention_head_dim=args.head_dim,
                                num_attention_heads=args.heads, joint_attention_dim=3 * args.te_hidden,
                                timestep_guidance_channels=256, mlp_ratio=3.0, axes_dims_rope=(axes,) * 4,
                                rope_theta=2000, eps=1e-6, guidance_embeds=False)
    with torch.no_grad():
        t.proj_out.weight.zero_()  # start as "predict 0", the usual DiT initialisation of the output layer
    return t


def build_vae(args):
    from diffusers import AutoencoderKLFlux2
    ch = tuple(int(c) for c in args.vae_channels.split(","))
    return AutoencoderKLFlux2(block_out_channels=ch, layers_per_block=args.vae_layers, latent_channels=32,
                              norm_num_groups=32)


# ---------------------------------------------------------------------------------------------------------------
# Training stages

def to_unit(images_u8, idx, device):
    x = images_u8[idx].to(device, non_blocking=True).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def scheduled_lr(base, step, warmup, frac, floor):
    """The learning rate of every stage: linear warm-up over `warmup` steps, then a cosine from `base` down to
    floor x base as `frac` (the share of the stage's time or steps gone) goes from 0 to 1."""
    return base * min(1.0, (step + 1) / warmup) * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def train_vae(args, vae, images_u8, device, deadline, logd):
    vae.to(device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    g = torch.Generator(device="cpu").manual_seed(args.seed + 1)
    n = images_u8.shape[0]
    step, t_start, last = 0, time.time(), 0.0
    losses = []
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    while time.time() < deadline:
        idx = torch.randint(0, n, (args.vae_batch,), generator=g)
        x = to_unit(images_u8, idx, device)
        frac = (time.time() - t_start) / max(1e-6, deadline - t_start)
        lr = scheduled_lr(args.vae_lr, step, 100, frac, 0.1)
        for grp in opt.param_groups:
            grp["lr"] = lr
        with amp:
            post = vae.encode(x).latent_dist
            z = post.mean
            # A little latent noise, so that the decoder forgives the transformer's small errors.
            z = z + 0.05 * z.detach().std() * torch.randn_like(z)
            rec = vae.decode(z).sample.float()
        kl = 0.5 * (post.mean.float() ** 2 + post.var.float() - 1.0 - post.logvar.float()).mean()
        loss = image_loss(rec, x, args.vae_shape_weight) + 1e-6 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        step += 1
        if time.time() - last > 10 or step == 1:
            last = time.time()
            log(f"vae step {step} loss {np.mean(losses[-50:]):.4f} lr {lr:.2e} "
                f"({step / (time.time() - t_start):.1f} it/s)")
    logd["vae"] = {"steps": step, "final_loss": float(np.mean(losses[-50:])) if losses else None,
                   "seconds": time.time() - t_start}
    log(f"vae done: {step} steps, loss {logd['vae']['final_loss']}")
    vae.eval()


def image_loss(rec, x, shape_weight):
    """L1 + L2 per pixel, the shapes' pixels and a 2-pixel rim around them weighing 1 + shape_weight (train_vae)."""
    err = (rec - x).abs() + (rec - x) ** 2
    if shape_weight > 0:
        # Shapes cover ~2-15% of an image, so a plain mean lets the decoder round their corners off; weight the
        # pixels that differ from the background (a corner pixel: shapes never reach the corners) and a 2-pixel
        # rim around them.
        shape = ((x - x[:, :, :1, :1]).abs().amax(dim=1, keepdim=True) > 0.05).float()
        rim = F.max_pool2d(shape, 5, stride=1, padding=2)
        err = err * (1 + shape_weight * rim)
    return err.mean()


def decode_packed(vae, x, h, w):
    """Normalized packed latents [B, h*w, 128] -> decoded images in [-1, 1] (the pipelines' decode)."""
    z = unpack(x, h, w)
    z = z * torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps) + vae.bn.running_mean.view(
        1, -1, 1, 1)
    return vae.decode(unpatchify(z)).sample


def adapt_decoder(args, dit, te, vae, lat, images_u8, ids, mask, empty, device, deadline, logd):
    """Fine-tunes the VAE decoder (the encoder, its latent space and the BatchNorm statistics stay) on latents the
    frozen transformer drew, against the images they should show. Each sample starts from a training latent noised
    to a random sigma up to --decoder-max-sigma and is integrated to sigma 0 in --decoder-steps Euler steps with true
    CFG 4, as the sampler ends a generation; its target is that latent's own image. The transformer's latents are
    a little off where it matters to the prompt checker (a square's corners come out rounded, docs/DEMO_MODEL.md),
    and the decoder learns to draw what such latents stand for. A share of each batch decodes the clean latents."""
    te.to(device).eval().requires_grad_(False)
    ctx_all, ctx_empty = encode_captions(te, ids, mask, empty, device)
    dit.to(device).eval().requires_grad_(False)
    vae.to(device).train()
    vae.bn.eval()  # the latent statistics stay those the transformer was trained on
    vae.encoder.requires_grad_(False)
    params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    opt = torch.optim.AdamW(params, lr=args.decoder_lr, betas=(0.9, 0.99), weight_decay=0.0)
    g = torch.Generator(device="cpu").manual_seed(args.seed + 4)
    gd = torch.Generator(device=device).manual_seed(args.seed + 5)
    n, li, _ = lat.shape
    side = int(round(math.sqrt(li)))
    img_ids, txt_ids = image_ids(side, side, device), text_ids(ids.shape[1], device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    b = args.decoder_batch
    step, t_start, last, losses = 0, time.time(), 0.0, []
    while time.time() < deadline:
        idx = torch.randint(0, n, (b,), generator=g)
        x0 = lat[idx].to(device).float()
        s0 = args.decoder_max_sigma * torch.rand(b, device=device, generator=gd)
        s0 = torch.where(torch.rand(b, device=device, generator=gd) < args.decoder_clean_fraction, 0.0, s0)
        x = (1 - s0[:, None, None]) * x0 + s0[:, None, None] * torch.randn(x0.shape, device=device, generator=gd)
        ctx = torch.cat([ctx_all[idx.to(device)], ctx_empty.expand(b, -1, -1)]).to(x.dtype)
        with torch.no_grad(), amp:
            for j in range(args.decoder_steps):
                sj = s0 * (1 - j / args.decoder_steps)
                sn = s0 * (1 - (j + 1) / args.decoder_steps)
                v = dit(hidden_states=torch.cat([x, x]), encoder_hidden_states=ctx, timestep=torch.cat([sj, sj]),
                        img_ids=img_ids, txt_ids=txt_ids, guidance=None, return_dict=False)[0].float()
                vc, vn = v[:b], v[b:]
                x = x + (sn - sj)[:, None, None] * (vn + 4.0 * (vc - vn))
        frac = (time.time() - t_start) / max(1e-6, deadline - t_start)
        lr = scheduled_lr(args.decoder_lr, step, 50, frac, 0.1)
        for grp in opt.param_groups:
            grp["lr"] = lr
        with amp:
            rec = decode_packed(vae, x, side, side).float()
        loss = image_loss(rec, to_unit(images_u8, idx, device), args.vae_shape_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
        step += 1
        if time.time() - last > 10 or step == 1:
            last = time.time()
            log(f"decoder step {step} loss {np.mean(losses[-50:]):.4f} lr {lr:.2e} ({step / (time.time() - t_start):.2f} it/s)")
    logd["decoder_adapt"] = {"steps": step, "final_loss": float(np.mean(losses[-50:])) if losses else None,
                             "seconds": time.time() - t_start, "samples_seen": step * b}
    log(f"decoder adaptation done: {step} steps, loss {logd['decoder_adapt']['final_loss']}")
    vae.eval().requires_grad_(True)


@torch.no_grad()
def encode_dataset(vae, images_u8, device, batch=256):
    """Patchified latent means [N, 128, h, w] (float32, on the device)."""
    out = []
    for s in range(0, images_u8.shape[0], batch):
        idx = torch.arange(s, min(s + batch, images_u8.shape[0]))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            z = vae.encode(to_unit(images_u8, idx, device)).latent_dist.mean
        out.append(patchify(z.float()))
    return torch.cat(out)


def normalize_latents(vae, lat):
    """Patchified latents [N, 128, h, w] normalized with the VAE's BatchNorm statistics, as the pipelines do."""
    mean, var = vae.bn.running_mean.view(1, -1, 1, 1), vae.bn.running_var.view(1, -1, 1, 1)
    return (lat - mean) / torch.sqrt(var + vae.config.batch_norm_eps)


def set_batch_norm_stats(vae, lat):
    with torch.no_grad():
        vae.bn.running_mean.copy_(lat.mean(dim=(0, 2, 3)))
        vae.bn.running_var.copy_(lat.var(dim=(0, 2, 3), unbiased=False))
        vae.bn.num_batches_tracked.fill_(1)
    return normalize_latents(vae, lat)


def select_device(name):
    """--device: auto (cuda when there is one), cuda or cpu."""
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # tiny Adam/EMA values otherwise slow CPU steps down tenfold
    return device


@torch.no_grad()
def encode_captions(te, ids, mask, empty, device):
    """The embeddings of every caption and of the empty prompt under a fixed text encoder, bf16 on `device`."""
    t0 = time.time()
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    with amp:
        ctx_all = torch.cat([encode_text(te, ids[i:i + 512].to(device).long(), mask[i:i + 512].to(device).long())
                             .to(torch.bfloat16) for i in range(0, ids.shape[0], 512)])
        ctx_empty = encode_text(te, empty[0][None].to(device).long(), empty[1][None].to(device).long()).to(
            torch.bfloat16)
    log(f"text encoder frozen: {ctx_all.shape[0]} captions encoded once ({ctx_all.numel() * 2 / 1e9:.1f} GB, "
        f"{time.time() - t0:.1f} s)")
    return ctx_all, ctx_empty


@torch.no_grad()
def token_shape_share(images_u8, device, batch=1024):
    """[N, tokens] float16: the share of each latent token's 16x16 pixels on a shape or within 2 pixels of one (the
    mask of train_vae's shape weighting), in pack() order."""
    out = []
    for i in range(0, images_u8.shape[0], batch):
        x = to_unit(images_u8, torch.arange(i, min(i + batch, images_u8.shape[0])), device)
        shape = ((x - x[:, :, :1, :1]).abs().amax(dim=1, keepdim=True) > 0.05).float()
        rim = F.max_pool2d(shape, 5, stride=1, padding=2)
        out.append(F.avg_pool2d(rim, 16).flatten(1).half())
    return torch.cat(out)


def train_transformer(args, dit, te, lat, ids, mask, empty, device, deadline, logd, params=None, stage="transformer",
                      token_share=None):
    """lat: normalized packed latents [N, Li, 128]; ids/mask: [N, L] token ids; empty: (ids, mask) of "".
    `params`: what to train (default the transformer, and the text encoder unless it is frozen); they end as their
    EMA. `stage` names the log lines and the entry of `logd`. `token_share` ([N, Li], token_shape_share) weighs the
    loss per token by 1 + args.shape_weight x share."""
    dit.to(device).train()
    te.to(device).train()
    if params is None:
        params = list(dit.parameters()) + ([] if args.freeze_text_encoder else list(te.parameters()))
    ctx_all = ctx_empty = None
    if args.freeze_text_encoder:
        # A fixed encoder gives every caption the same embedding in every step: encode each once (bf16, 49 KB a
        # caption). Its 28 narrow layers over 512 tokens cost about as much per step as the transformer.
        te.requires_grad_(False)
        ctx_all, ctx_empty = encode_captions(te, ids, mask, empty, device)
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0, eps=1e-8)
    ema = [p.detach().clone() for p in params]
    g = torch.Generator(device="cpu").manual_seed(args.seed + 2)
    gd = torch.Generator(device=device).manual_seed(args.seed + 3)
    n, li, _ = lat.shape
    side = int(round(math.sqrt(li)))
    img_ids = image_ids(side, side, device)
    txt_ids = text_ids(ids.shape[1], device)
    mu = empirical_mu(li, 50)
    shift = math.exp(mu)
    forward = torch.compile(dit) if args.compile else dit
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    step, t_start, last = 0, time.time(), 0.0
    losses = []
    while time.time() < deadline and (args.max_steps <= 0 or step < args.max_steps):
        idx = torch.randint(0, n, (args.batch,), generator=g)
        drop = (torch.rand(args.batch, generator=g) < args.caption_dropout).to(device)
        if ctx_all is None:
            b_ids = ids[idx].to(device, non_blocking=True).long()
            b_mask = mask[idx].to(device, non_blocking=True).long()
            b_ids = torch.where(drop[:, None], empty[0].to(device).long(), b_ids)
            b_mask = torch.where(drop[:, None], empty[1].to(device).long(), b_mask)
        x0 = lat[idx].to(device, non_blocking=True).float()
        u = torch.sigmoid(torch.randn(args.batch, device=device, generator=gd))
        sigma = shift * u / (1 + (shift - 1) * u)
        low = torch.rand(args.batch, device=device, generator=gd)
        sigma = torch.where(low < args.low_noise_fraction, torch.rand(args.batch, device=device, generator=gd), sigma)
        noise = torch.randn(x0.shape, device=device, generator=gd)
        xt = (1 - sigma[:, None, None]) * x0 + sigma[:, None, None] * noise
        frac = (time.time() - t_start) / max(1e-6, deadline - t_start)
        if args.max_steps > 0:
            frac = max(frac, step / args.max_steps)
        lr = scheduled_lr(args.lr, step, args.warmup, frac, 0.05)
        for grp in opt.param_groups:
            grp["lr"] = lr
        with amp:
            if ctx_all is None:
                ctx = encode_text(te, b_ids, b_mask)
            else:
                ctx = torch.where(drop[:, None, None], ctx_empty, ctx_all[idx.to(device)]).to(xt.dtype)
            v = forward(hidden_states=xt, encoder_hidden_states=ctx, timestep=sigma, img_ids=img_ids, txt_ids=txt_ids,
                        guidance=None, return_dict=False)[0]
        if token_share is None:
            loss = F.mse_loss(v.float(), noise - x0)
        else:
            w = 1 + args.shape_weight * token_share[idx.to(device)].float()
            loss = (((v.float() - (noise - x0)) ** 2).mean(dim=2) * w).sum() / w.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)
        losses.append(loss.item())
        step += 1
        if time.time() - last > 10 or step == 1:
            last = time.time()
            log(f"{stage} step {step} loss {np.mean(losses[-100:]):.4f} lr {lr:.2e} "
                f"({step / (time.time() - t_start):.2f} it/s, {args.batch} per step)")
    with torch.no_grad():
        for p, e in zip(params, ema):
            p.copy_(e)
    logd[stage] = {"steps": step, "final_loss": float(np.mean(losses[-100:])) if losses else None,
                           "seconds": time.time() - t_start, "samples_seen": step * args.batch,
                           "loss_curve": [float(np.mean(losses[i:i + 100])) for i in range(0, len(losses), 100)]}
    log(f"{stage} done: {step} steps, loss {logd[stage]['final_loss']}")
    dit.eval()
    te.eval()


# ---------------------------------------------------------------------------------------------------------------
# Sampling (klein base: true CFG, FlowMatchEuler with the pipeline's shifted schedule)

@torch.no_grad()
def sample(dit, te, vae, tokenizer, prompts, seeds, args, device, steps, guidance=4.0):
    n = len(prompts)
    ids, mask = tokenize(tokenizer, prompts, args.max_sequence_length)
    eids, emask = tokenize(tokenizer, [""], args.max_sequence_length)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    with amp:
        ctx = encode_text(te, torch.from_numpy(ids).long().to(device), torch.from_numpy(mask).long().to(device))
        neg = encode_text(te, torch.from_numpy(eids).long().to(device), torch.from_numpy(emask).long().to(device))
    neg = neg.expand(n, -1, -1)
    h = w = scenes.IMAGE_SIZE // 16
    x = torch.stack([torch.randn(128, h, w, generator=torch.Generator().manual_seed(s)) for s in seeds]).to(device)
    x = pack(x)
    mu = empirical_mu(h * w, steps)
    sig = [shift_sigma(float(s), mu) for s in np.linspace(1.0, 1.0 / steps, steps).astype(np.float32)] + [0.0]
    iid, tid = image_ids(h, w, device), text_ids(ids.shape[1], device)
    for i in range(steps):
        t = torch.full((2 * n,), sig[i], device=device)
        with amp:
            v = dit(hidden_states=torch.cat([x, x]), encoder_hidden_states=torch.cat([ctx, neg]), timestep=t,
                    img_ids=iid, txt_ids=tid, guidance=None, return_dict=False)[0].float()
        vc, vn = v[:n], v[n:]
        x = x + (sig[i + 1] - sig[i]) * (vn + guidance * (vc - vn))
    img = decode_packed(vae, x, h, w).float()
    return ((img * 0.5 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


# ---------------------------------------------------------------------------------------------------------------
# NVFP4 (BFL / comfy-kitchen convention; the same arithmetic as src/quant/nvfp4_quantizer.cpp)

_E2M1_BOUNDS = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)


def f32_to_e2m1(x):
    """Round to nearest, ties to the even code, saturating at 6; sign in bit 3."""
    a = x.abs()
    code = torch.zeros_like(a, dtype=torch.uint8)
    for i, b in enumerate(_E2M1_BOUNDS):
        # Between codes i and i+1 a tie goes to the even one: up when i+1 is even.
        code += (a >= b if i % 2 == 1 else a > b).to(torch.uint8)
    return code | (torch.signbit(x).to(torch.uint8) << 3)


def swizzle_scales(s):
    """[rows, cols] E4M3 bytes -> the cuBLAS 128x4 tiled layout, padded to [round_up(rows,128), round_up(cols,4)]."""
    rows, cols = s.shape
    rp, cp = -(-rows // 128) * 128, -(-cols // 4) * 4
    p = torch.zeros(rp, cp, dtype=torch.uint8)
    p[:rows, :cols] = s
    return p.view(rp // 128, 4, 32, cp // 4, 4).permute(0, 3, 2, 1, 4).reshape(rp, cp)


def quantize_nvfp4(w):
    """w [out, in] float32 -> (codes U8 [out, in/2], swizzled scales F8 [R, C], weight_scale_2 F32 scalar)."""
    out, inn = w.shape
    assert inn % 16 == 0, f"NVFP4 needs in_features % 16 == 0, got {inn}"
    w = w.float().contiguous()
    amax = w.abs().max()
    ws2 = (amax / (E4M3_MAX * E2M1_MAX)).float()
    blocks = w.view(out, inn // 16, 16)
    bmax = blocks.abs().amax(-1)
    raw = bmax / E2M1_MAX / ws2 if ws2 > 0 else torch.zeros_like(bmax)
    s8 = torch.clamp(raw, max=E4M3_MAX).to(torch.float8_e4m3fn)
    t = (ws2 * s8.float())[..., None]
    q = torch.where(t > 0, torch.clamp(blocks / torch.where(t > 0, t, torch.ones_like(t)), -E2M1_MAX, E2M1_MAX),
                    torch.zeros_like(blocks))
    codes = f32_to_e2m1(q).view(out, inn)
    packed = (codes[:, 0::2] << 4) | codes[:, 1::2]  # element 2i in the high nibble
    scales = swizzle_scales(s8.view(torch.uint8)).view(torch.float8_e4m3fn)
    return packed.contiguous(), scales, ws2.reshape(())


_E2M1_VALUES = torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 6], dtype=torch.float32)


def dequantize_nvfp4(packed, scales, ws2, out, inn):
    codes = torch.stack([packed >> 4, packed & 0xF], -1).view(out, inn).long()
    vals = _E2M1_VALUES[codes & 7] * torch.where((codes & 8) > 0, -1.0, 1.0)
    rows, cols = scales.shape
    lin = scales.view(torch.uint8).view(rows // 128, cols // 4, 32, 4, 4).permute(0, 3, 2, 1, 4).reshape(rows, cols)
    s = lin[:out, :inn // 16].view(torch.float8_e4m3fn).float() * ws2
    return (vals.view(out, inn // 16, 16) * s[..., None]).view(out, inn)


def write_nvfp4_selftest(path, seed=5):
    """Weights and this file's NVFP4 encoding of them, for tests/demo_nvfp4_test.cpp: flux2's C++ quantizer must
    produce the same bytes (ties, zero blocks, padded scale tiles and a tiny block included)."""
    from safetensors.torch import save_file
    g = torch.Generator().manual_seed(seed)
    cases = {"w0": torch.randn(200, 48, generator=g) * 0.05,  # rows not a multiple of 128, cols/16 = 3
             "w1": torch.randn(128, 64, generator=g)}
    w = torch.randn(64, 32, generator=g)
    # Exact E2M1 midpoints at a block scale of 1: amax 6 gives weight_scale_2 6/2688 and a block scale of 448.
    w[0, :16] = torch.tensor([6, 5, 3.5, 2.5, 1.75, 1.25, 0.75, 0.25, -0.25, -0.75, -5, 0, -0.0, 4.9, 0.26, 2.75])
    w[1, :16] = 0.0  # an all-zero block
    w[2, :16] = 1e-7  # a block whose scale underflows E4M3
    w[3] = w[3] * 6 / w[3].abs().max()
    cases["w2"] = w
    tensors = {}
    for name, x in cases.items():
        packed, scales, ws2 = quantize_nvfp4(x)
        tensors[name] = x.float().contiguous()
        tensors[name + ".codes"] = packed
        tensors[name + ".scales"] = scales
        tensors[name + ".weight_scale_2"] = ws2.float().contiguous()
    save_file(tensors, path)


def bfl_state_dict(sd, n_double, n_single):
    """diffusers Flux2Transformer2DModel names -> BFL names (the inverse of convert_flux2_to_diffusers.py)."""
    o = {"img_in.weight": sd["x_embedder.weight"], "txt_in.weight": sd["context_embedder.weight"],
         "time_in.in_layer.weight": sd["time_guidance_embed.timestep_embedder.linear_1.weight"],
         "time_in.out_layer.weight": sd["time_guidance_embed.timestep_embedder.linear_2.weight"],
         "double_stream_modulation_img.lin.weight": sd["double_stream_modulation_img.linear.weight"],
         "double_stream_modulation_txt.lin.weight": sd["double_stream_modulation_txt.linear.weight"],
         "single_stream_modulation.lin.weight": sd["single_stream_modulation.linear.weight"],
         "final_layer.linear.weight": sd["proj_out.weight"]}
    # diffusers' AdaLayerNormContinuous chunks (scale, shift), BFL's final layer (shift, scale).
    w = sd["norm_out.linear.weight"]
    d = w.shape[0] // 2
    o["final_layer.adaLN_modulation.1.weight"] = torch.cat([w[d:], w[:d]])
    for i in range(n_double):
        p, q = f"transformer_blocks.{i}.", f"double_blocks.{i}."
        o[q + "img_attn.qkv.weight"] = torch.cat([sd[p + f"attn.to_{x}.weight"] for x in "qkv"])
        o[q + "img_attn.proj.weight"] = sd[p + "attn.to_out.0.weight"]
        o[q + "img_attn.norm.query_norm.scale"] = sd[p + "attn.norm_q.weight"]
        o[q + "img_attn.norm.key_norm.scale"] = sd[p + "attn.norm_k.weight"]
        o[q + "txt_attn.qkv.weight"] = torch.cat([sd[p + f"attn.add_{x}_proj.weight"] for x in "qkv"])
        o[q + "txt_attn.proj.weight"] = sd[p + "attn.to_add_out.weight"]
        o[q + "txt_attn.norm.query_norm.scale"] = sd[p + "attn.norm_added_q.weight"]
        o[q + "txt_attn.norm.key_norm.scale"] = sd[p + "attn.norm_added_k.weight"]
        o[q + "img_mlp.0.weight"] = sd[p + "ff.linear_in.weight"]
        o[q + "img_mlp.2.weight"] = sd[p + "ff.linear_out.weight"]
        o[q + "txt_mlp.0.weight"] = sd[p + "ff_context.linear_in.weight"]
        o[q + "txt_mlp.2.weight"] = sd[p + "ff_context.linear_out.weight"]
    for i in range(n_single):
        p, q = f"single_transformer_blocks.{i}.", f"single_blocks.{i}."
        o[q + "linear1.weight"] = sd[p + "attn.to_qkv_mlp_proj.weight"]
        o[q + "linear2.weight"] = sd[p + "attn.to_out.weight"]
        o[q + "norm.query_norm.scale"] = sd[p + "attn.norm_q.weight"]
        o[q + "norm.key_norm.scale"] = sd[p + "attn.norm_k.weight"]
    assert len(o) == len(sd) - 4 * n_double, "every diffusers tensor must map to a BFL one"  # q,k,v fused twice
    return o


def nvfp4_layers(n_double, n_single):
    """BFL layer -> (diffusers module, has a static input_scale), as flux2-dev-nvfp4-mixed.safetensors: the
    double-block MLPs and the single-block linears are NVFP4, txt_mlp without input_scale; the rest bf16."""
    layers = {}
    for i in range(n_double):
        layers[f"double_blocks.{i}.img_mlp.0"] = (f"transformer_blocks.{i}.ff.linear_in", True)
        layers[f"double_blocks.{i}.img_mlp.2"] = (f"transformer_blocks.{i}.ff.linear_out", True)
        layers[f"double_blocks.{i}.txt_mlp.0"] = (f"transformer_blocks.{i}.ff_context.linear_in", False)
        layers[f"double_blocks.{i}.txt_mlp.2"] = (f"transformer_blocks.{i}.ff_context.linear_out", False)
    for i in range(n_single):
        layers[f"single_blocks.{i}.linear1"] = (f"single_transformer_blocks.{i}.attn.to_qkv_mlp_proj", True)
        layers[f"single_blocks.{i}.linear2"] = (f"single_transformer_blocks.{i}.attn.to_out", True)
    return layers


@torch.no_grad()
def calibrate_input_amax(dit, te, lat, ids, mask, modules, device, args, batches=8, batch=32):
    """amax of each module's input over training batches at random noise levels (fp32)."""
    amax = {m: 0.0 for m in modules}
    named = dict(dit.named_modules())
    hooks = [named[m].register_forward_pre_hook(
        lambda mod, inp, m=m: amax.__setitem__(m, max(amax[m], inp[0].detach().abs().max().item())))
        for m in modules]
    g = torch.Generator().manual_seed(args.seed + 4)
    n, li, _ = lat.shape
    side = int(round(math.sqrt(li)))
    for _ in range(batches):
        idx = torch.randint(0, n, (min(batch, n),), generator=g)
        x0 = lat[idx].to(device).float()
        s = torch.rand(len(idx), generator=g).to(device)
        noise = torch.randn(x0.shape, generator=g).to(device)
        xt = (1 - s[:, None, None]) * x0 + s[:, None, None] * noise
        ctx = encode_text(te, ids[idx].to(device).long(), mask[idx].to(device).long())
        dit(hidden_states=xt, encoder_hidden_states=ctx, timestep=s, img_ids=image_ids(side, side, device),
            txt_ids=text_ids(ids.shape[1], device), guidance=None, return_dict=False)
    for h in hooks:
        h.remove()
    return amax


def write_nvfp4_mixed(path, dit, amax, args):
    from safetensors.torch import save_file
    sd = {k: v.detach().to(torch.bfloat16).float().cpu() for k, v in dit.state_dict().items()}
    bfl = bfl_state_dict(sd, args.double_blocks, args.single_blocks)
    layers = nvfp4_layers(args.double_blocks, args.single_blocks)
    tensors, meta_layers, worst = {}, {}, 0.0
    for name, w in bfl.items():
        layer = name.rsplit(".", 1)[0]
        if layer not in layers:
            tensors[name] = w.to(torch.bfloat16).contiguous()
            continue
        module, static = layers[layer]
        packed, scales, ws2 = quantize_nvfp4(w)
        tensors[layer + ".weight"] = packed
        tensors[layer + ".weight_scale"] = scales
        tensors[layer + ".weight_scale_2"] = ws2.float().contiguous()
        if static:
            tensors[layer + ".input_scale"] = torch.tensor(max(amax[module], 1e-12) / (E4M3_MAX * E2M1_MAX),
                                                           dtype=torch.float32)
        meta_layers[layer] = {"format": "nvfp4"}
        deq = dequantize_nvfp4(packed, scales, ws2, *w.shape)
        worst = max(worst, ((deq - w).norm() / w.norm()).item())
    meta = {"_quantization_metadata": json.dumps({"format_version": "1.0", "layers": meta_layers}),
            "flux2cpp_demo": "trained on tools/demo_model/scenes.py scenes, see docs/DEMO_MODEL.md"}
    save_file(tensors, path, metadata=meta)
    return worst


# ---------------------------------------------------------------------------------------------------------------
# Export

def write_sheet(path, imgs, cols=8, ids=None):
    """Images of one size side by side, `cols` per row, in list order (white where the last row ends early); with
    `ids`, also each image as <folder of path>/<stem of path>/<id>.png, for `flux2 eval --check-images`."""
    from PIL import Image
    if ids is not None:
        folder = os.path.splitext(path)[0]
        os.makedirs(folder, exist_ok=True)
        for im, name in zip(imgs, ids):
            Image.fromarray(im).save(os.path.join(folder, f"{name}.png"))
    size = imgs[0].shape[0]
    rows = -(-len(imgs) // cols)
    sheet = np.full((rows * size, cols * size, 3), 255, np.uint8)
    for i, im in enumerate(imgs):
        r, c = divmod(i, cols)
        sheet[r * size:(r + 1) * size, c * size:(c + 1) * size] = im
    Image.fromarray(sheet).save(path)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def export(args, out, dit, te, vae, tokenizer, lat, ids, mask, device, logd):
    import diffusers
    import transformers
    from safetensors.torch import save_file
    os.makedirs(out, exist_ok=True)
    dit_cpu = dit.to("cpu").float()
    te_cpu = te.to("cpu").float()
    vae_cpu = vae.to("cpu").float()
    # bf16 on disk (as the released FLUX.2 weights); the VAE's BatchNorm statistics stay float32.
    dit_cpu.to(torch.bfloat16).save_pretrained(os.path.join(out, "transformer"))
    te_cpu.to(torch.bfloat16).save_pretrained(os.path.join(out, "text_encoder"))
    bn = {k: v.clone() for k, v in vae_cpu.bn.state_dict().items()}
    vae_bf16 = vae_cpu.to(torch.bfloat16)
    vae_bf16.bn.load_state_dict(bn)
    vae_bf16.bn.float()
    vae_bf16.save_pretrained(os.path.join(out, "vae"))
    for part in ("transformer", "vae"):  # a resumed run's configs would name the folder it was loaded from
        cfg_path = os.path.join(out, part, "config.json")
        cfg = json.load(open(cfg_path))
        if cfg.pop("_name_or_path", None) is not None:
            write_json(cfg_path, cfg)
    dit_cpu.float()
    te_cpu.float()
    vae_cpu.float()
    vae_cpu.bn.load_state_dict(bn)
    os.makedirs(os.path.join(out, "tokenizer"), exist_ok=True)
    for f in ("tokenizer.json.gz", "tokenizer_config.json"):
        shutil.copy(os.path.join(args.tokenizer, f), os.path.join(out, "tokenizer", f))
    os.makedirs(os.path.join(out, "scheduler"), exist_ok=True)
    write_json(os.path.join(out, "scheduler", "scheduler_config.json"),
               {"_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": diffusers.__version__,
                "num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": True, "base_shift": 0.5,
                "max_shift": 1.15, "base_image_seq_len": 256, "max_image_seq_len": 4096,
                "time_shift_type": "exponential"})
    write_json(os.path.join(out, "model_index.json"),
               {"_class_name": "Flux2KleinPipeline", "_diffusers_version": diffusers.__version__,
                "is_distilled": False, "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
                "text_encoder": ["transformers", "Qwen3ForCausalLM"],
                "tokenizer": ["transformers", "Qwen2TokenizerFast"],
                "transformer": ["diffusers", "Flux2Transformer2DModel"],
                "vae": ["diffusers", "AutoencoderKLFlux2"],
                "_flux2cpp_note": "the flux2.cpp demo model, trained on generated scenes (docs/DEMO_MODEL.md); "
                                  "tokenizer/ holds tokenizer.json.gz (gunzip it for transformers)"})

    # The NVFP4-mixed transformer, from the bf16-rounded weights, with input scales calibrated in fp32.
    dit_q = type(dit_cpu).from_config(dit_cpu.config)
    dit_q.load_state_dict({k: v.to(torch.bfloat16).float() for k, v in dit_cpu.state_dict().items()})
    te_q = type(te_cpu)(te_cpu.config)
    te_q.load_state_dict({k: v.to(torch.bfloat16).float() for k, v in te_cpu.state_dict().items()}, strict=False)
    te_q.tie_weights()
    dit_q.to(device).eval()
    te_q.to(device).eval()
    layers = nvfp4_layers(args.double_blocks, args.single_blocks)
    amax = calibrate_input_amax(dit_q, te_q, lat, ids, mask, [m for m, _ in layers.values()], device, args,
                                batch=min(32, max(4, args.batch)))
    worst = write_nvfp4_mixed(os.path.join(out, NVFP4_FILE), dit_q, amax, args)
    log(f"wrote {NVFP4_FILE}: {len(layers)} NVFP4 layers, worst weight error {worst:.4f} (relative L2)")

    # A reference for checking flux2.cpp's prompt encoding: the first eval prompt, encoded by the exported weights.
    prompts = json.load(open(os.path.join(REPO, "assets", "demo_eval_prompts.json")))["prompts"]
    rid, rmask = tokenize(tokenizer, [prompts[0]["prompt"]], args.max_sequence_length)
    with torch.no_grad():
        ref = encode_text(te_q, torch.from_numpy(rid).long().to(device), torch.from_numpy(rmask).long().to(device))
    os.makedirs(os.path.join(out, "check"), exist_ok=True)
    save_file({"prompt_embeds": ref.float().cpu().contiguous(), "input_ids": torch.from_numpy(rid).long()},
              os.path.join(out, "check", "prompt_embeds.safetensors"), metadata={"prompt": prompts[0]["prompt"]})

    if args.preview_prompts > 0:
        sel = prompts[:args.preview_prompts]
        vae_cpu.to(device)
        imgs = sample(dit_q, te_q, vae_cpu, tokenizer, [p["prompt"] for p in sel], [p["seed"] for p in sel], args,
                      device, args.preview_steps)
        write_sheet(os.path.join(out, "check", "preview.png"), imgs, ids=[p["id"] for p in sel])
        log(f"wrote check/preview.png ({len(imgs)} eval prompts, python sampler, {args.preview_steps} steps, CFG 4)")
    # The VAE alone on the generator's images of the eval prompts: what the transformer could at best achieve.
    # `flux2 eval --check-images OUT/check/vae_recon` scores it (and OUT/check/preview the Python sampler's drawings).
    renders = np.stack([scenes.render(scene) for _, scene in scenes.eval_scenes()])
    with torch.no_grad():
        x = torch.from_numpy(renders).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1
        vae_cpu.to(device)
        rec = vae_cpu.decode(vae_cpu.encode(x).latent_dist.mean).sample.float()
    rec = ((rec * 0.5 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    write_sheet(os.path.join(out, "check", "vae_recon.png"), rec, ids=[p["id"] for p in prompts])
    log(f"wrote check/vae_recon.png (the VAE's reconstruction of the {len(rec)} eval renders); mean absolute error "
        f"{np.abs(rec.astype(np.float32) - renders).mean():.2f} levels")

    logd["versions"] = {"torch": torch.__version__, "diffusers": diffusers.__version__,
                        "transformers": transformers.__version__, "python": sys.version.split()[0]}
    logd["total_seconds"] = time.time() - T0
    sizes = {}
    for root, _, files in os.walk(out):
        for f in files:
            p = os.path.join(root, f)
            sizes[os.path.relpath(p, out)] = os.path.getsize(p)
    logd["file_sizes"] = sizes
    write_json(os.path.join(out, "check", "train_log.json"), logd)
    total = sum(v for k, v in sizes.items() if not k.startswith("check/"))
    log(f"model folder {out}: {total / 1e6:.1f} MB (without check/)")


def load_previous(args, folder, announce=True):
    """The VAE, transformer and text encoder of an earlier run's output (bf16 on disk, trained on in fp32); the
    architecture flags are taken from their configs. `announce` logs what --resume does with them."""
    from diffusers import AutoencoderKLFlux2, Flux2Transformer2DModel
    from transformers import Qwen3ForCausalLM
    vae = AutoencoderKLFlux2.from_pretrained(os.path.join(folder, "vae")).float().eval()
    dit = Flux2Transformer2DModel.from_pretrained(os.path.join(folder, "transformer")).float()
    te = Qwen3ForCausalLM.from_pretrained(os.path.join(folder, "text_encoder"), attn_implementation="sdpa").float()
    c = dit.config
    args.heads, args.head_dim = c.num_attention_heads, c.attention_head_dim
    args.double_blocks, args.single_blocks = c.num_layers, c.num_single_layers
    args.te_hidden, args.te_layers = te.config.hidden_size, te.config.num_hidden_layers
    args.vae_channels = ",".join(str(x) for x in vae.config.block_out_channels)
    args.vae_layers = vae.config.layers_per_block
    if announce and args.decoder_adapt:
        log(f"resuming from {folder}: transformer, text encoder and VAE encoder kept, VAE decoder adapted")
    elif announce:
        log(f"resuming from {folder}: VAE kept, transformer " +
            ("trained further, text encoder kept" if args.freeze_text_encoder else "and text encoder trained further"))
    return vae, dit, te


def main(argv=None):
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "--nvfp4-selftest":
        write_nvfp4_selftest(sys.argv[2])
        return
    args = parse_args(argv)
    if args.decoder_adapt and not args.resume:  # before the data and the VAE stage, not after them
        raise SystemExit("--decoder-adapt adapts the decoder of an earlier run: give it --resume FOLDER")
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    workers = args.workers or os.cpu_count() or 1
    reserve = args.reserve_s or max(15.0, 0.08 * args.time_budget_s)
    logd = {"args": vars(args), "command": " ".join(sys.argv)}
    log("settings:", json.dumps(vars(args)))

    # 0. data (forked workers before any CUDA work)
    images, captions, ids, mask = make_dataset(args.num_scenes, args.seed, workers, args.tokenizer,
                                               args.max_sequence_length)
    log(f"rendered and tokenized {len(captions)} scenes with {workers} workers; e.g. '{captions[0]}'")
    tokenizer = load_tokenizer(args.tokenizer)
    check_template(tokenizer)
    eids, emask = tokenize(tokenizer, [""], args.max_sequence_length)
    eval_prompts = [p["prompt"] for p in json.load(open(os.path.join(REPO, "assets", "demo_eval_prompts.json")))
                    ["prompts"]]
    vids, _ = tokenize(tokenizer, eval_prompts, args.max_sequence_length)
    longest = int(mask.sum(1).max())
    if longest >= args.max_sequence_length:
        raise SystemExit(f"a caption fills all {args.max_sequence_length} tokens")
    used = np.unique(np.concatenate([ids.reshape(-1), eids.reshape(-1), vids.reshape(-1)]))
    log(f"tokenized: longest caption {longest} tokens, {len(used)} distinct token ids")
    logd["data"] = {"scenes": len(captions), "longest_tokens": longest, "distinct_tokens": int(len(used))}

    device = select_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        log("device:", torch.cuda.get_device_name(device))
    images_t = torch.from_numpy(images)
    if device.type == "cuda":
        images_t = images_t.to(device)

    # 1. VAE (trained, or taken from --resume with its BatchNorm statistics)
    if args.resume:
        vae, dit, te = load_previous(args, args.resume)
        vae.to(device)
        lat = normalize_latents(vae, encode_dataset(vae, images_t, device))
    else:
        vae = build_vae(args)
        log(f"VAE: {sum(p.numel() for p in vae.parameters()) / 1e6:.2f} M parameters")
        train_vae(args, vae, images_t, device, T0 + args.vae_fraction * args.time_budget_s, logd)
        lat = encode_dataset(vae, images_t, device)
        lat = set_batch_norm_stats(vae, lat)
    lat = pack(lat).to(torch.bfloat16)
    log(f"latents {tuple(lat.shape)}; BatchNorm mean |{vae.bn.running_mean.abs().mean():.3f}| "
        f"var {vae.bn.running_var.mean():.3f}")
    ids_t, mask_t = torch.from_numpy(ids), torch.from_numpy(mask)
    if device.type == "cuda":
        ids_t, mask_t = ids_t.to(device), mask_t.to(device)
    empty = (torch.from_numpy(eids[0]), torch.from_numpy(emask[0]))
    if args.decoder_adapt:
        adapt_decoder(args, dit, te, vae, lat, images_t, ids_t, mask_t, empty, device,
                      T0 + args.time_budget_s - reserve, logd)
    share = token_shape_share(images_t, device) if args.shape_weight > 0 and not args.decoder_adapt else None
    if share is not None:
        log(f"tokens on or next to a shape: {(share > 0).float().mean():.1%}; their loss weighs up to "
            f"{1 + args.shape_weight:g}x")
    del images_t

    # 2. transformer + text encoder
    if not args.resume:
        te = build_text_encoder(args, torch.from_numpy(used).long())
        dit = build_transformer(args)
    log(f"transformer: {sum(p.numel() for p in dit.parameters()) / 1e6:.2f} M parameters; text encoder: "
        f"{sum(p.numel() for p in te.model.layers.parameters()) / 1e6:.3f} M in layers + embedding")
    if not args.decoder_adapt:
        train_transformer(args, dit, te, lat, ids_t, mask_t, empty, device, T0 + args.time_budget_s - reserve, logd,
                          token_share=share)

    # 3. export
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    export(args, args.out, dit, te, vae, tokenizer, lat, ids_t, mask_t, device, logd)
    log("done")


if __name__ == "__main__":
    main()

"""The training stages (VAE, transformer with its text encoder, decoder adaptation), their shared pieces (image loss,
latent statistics, learning-rate schedule) and the sampler that draws with the result."""
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

import scenes
from captions import tokenize
from common import log
from latent_layout import empirical_mu, image_ids, pack, patchify, shift_sigma, text_ids, unpack, unpatchify
from models import encode_text


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


def adapt_decoder(args, dit, te, vae, lat, images_u8, ids, mask, empty, device, deadline, logd, contexts=None):
    """Fine-tunes the VAE decoder (the encoder, its latent space and the BatchNorm statistics stay) on latents the
    frozen transformer drew, against the images they should show. Each sample starts from a training latent noised
    to a random sigma up to --decoder-max-sigma and is integrated to sigma 0 in --decoder-steps Euler steps with true
    CFG 4, as the sampler ends a generation; its target is that latent's own image. The transformer's latents are
    a little off where it matters to the prompt checker (a square's corners come out rounded, docs/DEMO_MODEL.md),
    and the decoder learns to draw what such latents stand for. A share of each batch decodes the clean latents.
    `contexts`: the captions' embeddings as train_transformer returned them, if it froze the text encoder."""
    te.to(device).eval().requires_grad_(False)
    ctx_all, ctx_empty = contexts or encode_captions(te, ids, mask, empty, device)
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
    loss per token by 1 + args.shape_weight x share.
    The text encoder trains with the transformer for the first args.text_encoder_fraction of the stage's time (none
    with args.freeze_text_encoder), then takes its EMA and stays fixed. Returns the captions' embeddings under the
    fixed encoder (ctx_all, ctx_empty), or None when it trained to the end.
    For the first args.short_text_fraction of the stage the captions are cut to args.short_text_tokens tokens (every
    caption fits, with padding after it): the transformer's sequence is 64 image tokens and the padded text, so the
    512 text tokens the pipelines use make about 8 of every 9 tokens it sees. The steps on short captions are several
    times faster; the rest of the stage, at the full length, teaches it the pipelines' padding. The text encoder is
    causal, so a caption's own tokens come out the same at either length."""
    dit.to(device).train()
    te.to(device).train()
    te_trains = params is None and not args.freeze_text_encoder
    if params is None:
        params = list(dit.parameters()) + (list(te.parameters()) if te_trains else [])
    full = ids.shape[1]
    short = args.short_text_tokens if args.short_text_fraction > 0 else full
    t_start = time.time()
    short_until = t_start + args.short_text_fraction * (deadline - t_start)
    length = short

    def encoded(tokens):  # every caption's embedding, and the empty prompt's, at `tokens` tokens
        return encode_captions(te, ids[:, :tokens], mask[:, :tokens], (empty[0][:tokens], empty[1][:tokens]), device)

    ctx_all = ctx_empty = None
    if not te_trains:
        # A fixed encoder gives every caption the same embedding in every step: encode each once (bf16, 49 KB a
        # caption at 512 tokens). Its 28 narrow layers cost about as much per step as the transformer.
        te.requires_grad_(False)
        ctx_all, ctx_empty = encoded(length)
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.99), weight_decay=0.0, eps=1e-8)
    ema = [p.detach().clone() for p in params]
    te_ema = ema[-len(list(te.parameters())):] if te_trains else []
    te_until = time.time() + args.text_encoder_fraction * (deadline - time.time()) if te_trains else None
    g = torch.Generator(device="cpu").manual_seed(args.seed + 2)
    gd = torch.Generator(device=device).manual_seed(args.seed + 3)
    n, li, _ = lat.shape
    side = int(round(math.sqrt(li)))
    img_ids = image_ids(side, side, device)
    txt_ids = text_ids(length, device)
    mu = empirical_mu(li, 50)
    shift = math.exp(mu)
    forward = torch.compile(dit) if args.compile else dit
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    step, last = 0, 0.0
    losses = []
    if length < full:
        log(f"{stage}: captions cut to {length} of {full} tokens for the first {args.short_text_fraction:.0%} "
            f"of the stage")
    while time.time() < deadline and (args.max_steps <= 0 or step < args.max_steps):
        if length < full and time.time() >= short_until:
            length = full
            txt_ids = text_ids(length, device)
            logd[f"{stage}_full_text_from_step"] = step
            log(f"{stage} step {step}: captions padded to all {full} tokens from here on "
                f"({step / (time.time() - t_start):.2f} it/s on short ones)")
            if ctx_all is not None:
                ctx_all = ctx_empty = None  # free the short embeddings before encoding the long ones
                ctx_all, ctx_empty = encoded(length)
        if te_until is not None and ctx_all is None and time.time() >= te_until:
            # The encoder's share is over: it keeps its EMA from here on (a frozen parameter has no gradient, so
            # AdamW and the clipping pass it by, and its EMA stays equal to it) and every caption is encoded once,
            # so that the remaining steps run the transformer alone, about twice as many a second.
            with torch.no_grad():
                for p, e in zip(te.parameters(), te_ema):
                    p.copy_(e)
            te.requires_grad_(False)
            ctx_all, ctx_empty = encoded(length)
            logd[f"{stage}_text_encoder_frozen_at_step"] = step
            log(f"{stage} step {step}: the text encoder stops training")
        idx = torch.randint(0, n, (args.batch,), generator=g)
        drop = (torch.rand(args.batch, generator=g) < args.caption_dropout).to(device)
        if ctx_all is None:
            b_ids = ids[idx, :length].to(device, non_blocking=True).long()
            b_mask = mask[idx, :length].to(device, non_blocking=True).long()
            b_ids = torch.where(drop[:, None], empty[0][:length].to(device).long(), b_ids)
            b_mask = torch.where(drop[:, None], empty[1][:length].to(device).long(), b_mask)
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
    if ctx_all is None:
        return None
    return (ctx_all, ctx_empty) if length == full else encoded(full)


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

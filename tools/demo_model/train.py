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
     CFG, with a small Qwen3ForCausalLM text encoder (hidden layers 9, 18, 27 stacked, as the klein pipeline
     does) that trains with it for --text-encoder-fraction of the stage and then stays fixed; EMA weights;
  2b. with --decoder-fraction: the VAE decoder adapted to what the transformer draws (stages.adapt_decoder);
  3. export: a diffusers folder (model_index.json, transformer/, vae/, text_encoder/, tokenizer/, scheduler/), the
     transformer also as a BFL NVFP4-mixed file with calibrated input scales, a preview sheet and train_log.json.

This file holds the command line, the export and the order of the stages; the pieces are beside it: captions.py
(data), latent_layout.py, models.py, stages.py (the training stages and the sampler), nvfp4_export.py and
common.py (clock, log, device, writers). train_lora.py trains the demo LoRA with the same pieces.

The defaults are the committed model's settings (run H: 828 s on one H200, from scratch):

    python3 tools/demo_model/train.py --out /tmp/demo-model
    python3 tools/demo_model/train.py --out /tmp/demo-model-2 --resume /tmp/demo-model --time-budget-s 420
    python3 tools/demo_model/train.py --out /tmp/demo-cpu --time-budget-s 60 --num-scenes 256 --batch 4 --vae-batch 8 \
        --decoder-batch 4 --device cpu --preview-prompts 2 --preview-steps 4
    python3 tools/demo_model/train.py --nvfp4-selftest tests/data/demo/nvfp4_python.safetensors
"""
import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenes  # noqa: E402
from captions import check_template, load_tokenizer, make_dataset, tokenize  # noqa: E402
from common import REPO, T0, log, select_device, write_json, write_sheet  # noqa: E402
from latent_layout import pack  # noqa: E402
from models import build_text_encoder, build_transformer, build_vae, encode_text, load_previous  # noqa: E402
from nvfp4_export import calibrate_input_amax, nvfp4_layers, write_nvfp4_mixed, write_nvfp4_selftest  # noqa: E402
from stages import (adapt_decoder, encode_dataset, normalize_latents, sample, set_batch_norm_stats,  # noqa: E402
                    token_shape_share, train_transformer, train_vae)

NVFP4_FILE = "flux2-klein-base-demo-nvfp4-mixed.safetensors"


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder (replaced)")
    ap.add_argument("--time-budget-s", type=float, default=840, help="wall clock for everything, from the start")
    ap.add_argument("--vae-fraction", type=float, default=0.2, help="share of the budget for the VAE stage")
    ap.add_argument("--reserve-s", type=float, default=15, help="seconds kept for the export (0: 8%% of the budget, "
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
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--caption-dropout", type=float, default=0.1)
    ap.add_argument("--low-noise-fraction", type=float, default=0.5,
                    help="share of samples whose noise level is uniform in (0, 1) instead of the shifted logit-normal "
                    "(which puts 2%% of them below sigma 0.4, where a few-step sampler's last step decides the "
                    "shapes' corners)")
    ap.add_argument("--shape-weight", type=float, default=4.0,
                    help="the transformer's loss on a latent token weighs 1 + this x the share of its pixels on or "
                    "next to a shape (0: a plain mean)")
    ap.add_argument("--short-text-fraction", type=float, default=0.7,
                    help="share of the transformer stage trained on captions cut to --short-text-tokens (several "
                    "times faster steps); the rest pads them to --max-sequence-length, as the pipelines do")
    ap.add_argument("--short-text-tokens", type=int, default=64)
    ap.add_argument("--max-steps", type=int, default=0, help="stop the transformer stage after this many steps")
    ap.add_argument("--resume", help="an earlier output folder: keep its VAE, train its transformer and text "
                    "encoder further for the whole budget (architecture flags come from it)")
    # text encoder
    ap.add_argument("--te-hidden", type=int, default=16)
    ap.add_argument("--te-layers", type=int, default=28)
    ap.add_argument("--text-encoder-fraction", type=float, default=0.3,
                    help="share of the transformer stage's time in which the text encoder trains with it; then it "
                    "takes its EMA and stays fixed, every caption is encoded once, and the steps run the "
                    "transformer alone (about twice as many a second)")
    ap.add_argument("--freeze-text-encoder", action="store_true",
                    help="keep the text encoder fixed from the start (random, or as --resume left it): "
                    "--text-encoder-fraction 0")
    ap.add_argument("--decoder-adapt", action="store_true",
                    help="with --resume: keep the transformer and text encoder, and fine-tune the VAE decoder on the "
                         "transformer's own samples for the budget (adapt_decoder)")
    ap.add_argument("--decoder-fraction", type=float, default=0.15,
                    help="share of the budget, after the transformer stage, in which the VAE decoder adapts to the "
                    "transformer's own samples as --decoder-adapt does (0: none)")
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
# Export

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


def main(argv=None):
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "--nvfp4-selftest":
        write_nvfp4_selftest(sys.argv[2])
        return
    args = parse_args(argv)
    if args.decoder_adapt and not args.resume:  # before the data and the VAE stage, not after them
        raise SystemExit("--decoder-adapt adapts the decoder of an earlier run: give it --resume FOLDER")
    if args.text_encoder_fraction <= 0:
        args.freeze_text_encoder = True
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    workers = args.workers or os.cpu_count() or 1
    reserve = args.reserve_s or max(15.0, 0.08 * args.time_budget_s)
    adapt_s = 0.0 if args.decoder_adapt else args.decoder_fraction * args.time_budget_s  # after the transformer
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
    if args.short_text_fraction > 0 and not longest < args.short_text_tokens <= args.max_sequence_length:
        raise SystemExit(f"--short-text-tokens {args.short_text_tokens} must hold the longest caption ({longest} "
                         f"tokens) and padding after it, within --max-sequence-length {args.max_sequence_length}")
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
    if not adapt_s:
        del images_t

    # 2. transformer + text encoder
    if not args.resume:
        te = build_text_encoder(args, torch.from_numpy(used).long())
        dit = build_transformer(args)
    log(f"transformer: {sum(p.numel() for p in dit.parameters()) / 1e6:.2f} M parameters; text encoder: "
        f"{sum(p.numel() for p in te.model.layers.parameters()) / 1e6:.3f} M in layers + embedding")
    if not args.decoder_adapt:
        contexts = train_transformer(args, dit, te, lat, ids_t, mask_t, empty, device,
                                     T0 + args.time_budget_s - reserve - adapt_s, logd, token_share=share)
        if adapt_s:
            adapt_decoder(args, dit, te, vae, lat, images_t, ids_t, mask_t, empty, device,
                          T0 + args.time_budget_s - reserve, logd, contexts)
            del images_t

    # 3. export
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    export(args, args.out, dit, te, vae, tokenizer, lat, ids_t, mask_t, device, logd)
    log("done")


if __name__ == "__main__":
    main()

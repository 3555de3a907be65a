#!/usr/bin/env python3
"""Baseline of `flux2 bench --pipeline` (issue 12): diffusers' FLUX.2 pipeline with random weights at real size.

klein-4b / klein-9b: the whole Flux2KleinPipeline (distilled, 4 steps by default) built from configs in bf16 on the
GPU: Qwen3 text encoder at its real size, the klein transformer, the FLUX.2 VAE, the real Qwen3 tokenizer (the
project's assets/qwen3-tokenizer). After one untimed image it times, per image: prompt encoding (encode_prompt),
the call up to latents (output_type="latent"), the whole call (output_type="pt"); denoising = latent call - encoding,
decode = whole call - latent call. Peak = torch.cuda.max_memory_allocated over the whole call.

dev: Flux2Pipeline needs Mistral's Pixtral processor, which cannot be downloaded here, so its parts are timed one by
one: the Mistral-Small-3.x text model (24B, 512 tokens) forward, one Flux2Transformer2DModel step at the resolution,
and the VAE decode; total = encode + steps x step + decode. Parts are freed in between (they do not fit together
with activations at 2048 on one card).

Runs on the GPU machine (scripts/device-test.sh, FLUX2_PIPELINE_BENCH), with diffusers from a carried wheel.
Prints one table row per model and resolution, the same columns as `flux2 bench --pipeline`.
"""
import argparse
import gzip
import os
import shutil
import statistics
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER = os.path.join(HERE, "..", "assets", "qwen3-tokenizer")
PROMPT = "a photograph of a lighthouse on a rocky coast at dusk, warm light in the windows, waves, long exposure"

TRANSFORMERS = {  # heads, double blocks, single blocks, context dim, guidance embedding
    "dev": (48, 8, 48, 15360, True),
    "klein-9b": (32, 8, 24, 12288, False),
    "klein-4b": (24, 5, 20, 7680, False),
}
QWEN3 = {"klein-4b": (2560, 36, 32, 8, 9728), "klein-9b": (4096, 36, 32, 8, 12288)}  # hidden, layers, heads, kv, mlp


def sync_time():
    torch.cuda.synchronize()
    return time.perf_counter()


def randomize(module):
    """Small random weights (norm gains 1), in place: the default inits are slow on 24-32B parameters and the
    numbers only need to stay finite."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 1 and "norm" in name:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02)
    return module


def build(cls, *args, **kwargs):
    # bf16 from the start: a 32B model built in fp32 first would need 128 GB.
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        m = cls(*args, **kwargs)
    torch.set_default_dtype(torch.float32)
    return randomize(m.eval())


def transformer(model):
    from diffusers import Flux2Transformer2DModel
    heads, double, single, ctx, guidance = TRANSFORMERS[model]
    return build(Flux2Transformer2DModel, patch_size=1, in_channels=128, num_layers=double, num_single_layers=single,
                 attention_head_dim=128, num_attention_heads=heads, joint_attention_dim=ctx,
                 timestep_guidance_channels=256, mlp_ratio=3.0, axes_dims_rope=(32, 32, 32, 32),
                 guidance_embeds=guidance)


def vae():
    from diffusers import AutoencoderKLFlux2
    return build(AutoencoderKLFlux2)


def scheduler():
    from diffusers import FlowMatchEulerDiscreteScheduler
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                           base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                           max_image_seq_len=4096, time_shift_type="exponential")


def tokenizer():
    from transformers import AutoTokenizer
    tmp = tempfile.mkdtemp(prefix="flux2-tok-")
    with gzip.open(os.path.join(TOKENIZER, "tokenizer.json.gz"), "rb") as f, \
            open(os.path.join(tmp, "tokenizer.json"), "wb") as g:
        shutil.copyfileobj(f, g)
    shutil.copy(os.path.join(TOKENIZER, "tokenizer_config.json"), tmp)
    return AutoTokenizer.from_pretrained(tmp)


def row(model, res, steps, encode, denoise, decode, total, peak, note=""):
    print(f"diffusers {model:<8} {res:<6} {steps:>5} {encode:9.3f} {denoise:9.3f} {denoise / steps:9.4f} "
          f"{decode:9.3f} {total:10.3f} {peak:9.2f}  {note}", flush=True)


def klein(model, resolutions, steps, repeats):
    from diffusers import Flux2KleinPipeline
    from transformers import Qwen3Config, Qwen3ForCausalLM
    hidden, layers, heads, kv, mlp = QWEN3[model]
    te_config = Qwen3Config(vocab_size=151936, hidden_size=hidden, intermediate_size=mlp, num_hidden_layers=layers,
                            num_attention_heads=heads, num_key_value_heads=kv, head_dim=128, rms_norm_eps=1e-6,
                            max_position_embeddings=40960, tie_word_embeddings=True)
    t0 = time.perf_counter()
    pipe = Flux2KleinPipeline(scheduler=scheduler(), vae=vae(), text_encoder=build(Qwen3ForCausalLM, te_config),
                              tokenizer=tokenizer(), transformer=transformer(model), is_distilled=True)
    print(f"diffusers {model}: built with random weights in {time.perf_counter() - t0:.1f} s, "
          f"{torch.cuda.memory_allocated() / 1e9:.2f} GB", flush=True)
    for res in resolutions:
        def call(output_type):
            return pipe(prompt=PROMPT, height=res, width=res, num_inference_steps=steps, guidance_scale=1.0,
                        generator=torch.Generator("cuda").manual_seed(0), output_type=output_type)
        with torch.inference_mode():
            call("pt")  # untimed: kernels, allocator
            enc, lat, tot = [], [], []
            torch.cuda.reset_peak_memory_stats()
            for _ in range(repeats):
                t = sync_time()
                pipe.encode_prompt(PROMPT, device="cuda")
                enc.append(sync_time() - t)
                t = sync_time()
                call("latent")
                lat.append(sync_time() - t)
                t = sync_time()
                call("pt")
                tot.append(sync_time() - t)
        e, l, w = statistics.median(enc), statistics.median(lat), statistics.median(tot)
        row(model, res, steps, e, l - e, w - l, w, torch.cuda.max_memory_allocated() / 1e9)


def dev(resolutions, steps, repeats, text_tokens=512):
    from transformers import MistralConfig, MistralModel
    # Mistral-Small-3.x's text model (Flux2Pipeline reads hidden layers 10, 20, 30 of it).
    cfg = MistralConfig(vocab_size=131072, hidden_size=5120, intermediate_size=32768, num_hidden_layers=40,
                        num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=131072)
    te = build(MistralModel, cfg)
    ids = torch.randint(0, 131072, (1, text_tokens), device="cuda")
    with torch.inference_mode():
        te(input_ids=ids, output_hidden_states=True)
        times = []
        for _ in range(repeats):
            t = sync_time()
            te(input_ids=ids, output_hidden_states=True)
            times.append(sync_time() - t)
    encode = statistics.median(times)
    te_peak = torch.cuda.max_memory_allocated() / 1e9
    del te
    torch.cuda.empty_cache()
    print(f"diffusers dev: Mistral text model (24B) forward at {text_tokens} tokens {encode:.3f} s, "
          f"peak {te_peak:.1f} GB", flush=True)
    dit, decoder = transformer("dev"), vae()
    for res in resolutions:
        torch.cuda.reset_peak_memory_stats()
        n = (res // 16) ** 2
        x = torch.randn(1, n, 128, device="cuda", dtype=torch.bfloat16)
        ctx = torch.randn(1, text_tokens, 15360, device="cuda", dtype=torch.bfloat16)
        img_ids = torch.stack(torch.meshgrid(torch.zeros(1), torch.arange(res // 16.0), torch.arange(res // 16.0),
                                             torch.zeros(1), indexing="ij"), -1).reshape(-1, 4).cuda()
        txt_ids = torch.zeros(text_tokens, 4, device="cuda")
        txt_ids[:, 3] = torch.arange(text_tokens)
        args = dict(hidden_states=x, encoder_hidden_states=ctx, timestep=torch.full((1,), 0.5, device="cuda"),
                    guidance=torch.full((1,), 4.0, device="cuda"), img_ids=img_ids, txt_ids=txt_ids,
                    return_dict=False)
        latents = torch.randn(1, 32, res // 8, res // 8, device="cuda", dtype=torch.bfloat16)
        with torch.inference_mode():
            for _ in range(2):
                dit(**args)
            step_times, decode_times = [], []
            for _ in range(max(repeats, 3)):
                t = sync_time()
                dit(**args)
                step_times.append(sync_time() - t)
            decoder.decode(latents)
            for _ in range(repeats):
                t = sync_time()
                decoder.decode(latents)
                decode_times.append(sync_time() - t)
        step, decode = statistics.median(step_times), statistics.median(decode_times)
        peak = max(te_peak, torch.cuda.max_memory_allocated() / 1e9)
        row("dev", res, steps, encode, steps * step, decode, encode + steps * step + decode, peak,
            "parts timed apart: encode + steps x step + decode")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["dev", "klein-4b", "klein-9b"], required=True)
    ap.add_argument("--resolutions", default="1024")
    ap.add_argument("--steps", type=int, help="default: 50 for dev, 4 for klein (distilled)")
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    resolutions = [int(r) for r in a.resolutions.split(",")]
    print(f"{'':9} {'model':<8} {'res':<6} {'steps':>5} {'encode s':>9} {'denoise s':>9} {'s/step':>9} "
          f"{'decode s':>9} {'total s':>10} {'peak GB':>9}", flush=True)
    if a.model == "dev":
        dev(resolutions, a.steps or 50, a.repeat)
    else:
        klein(a.model, resolutions, a.steps or 4, a.repeat)


if __name__ == "__main__":
    main()

"""The demo transformer as a BFL NVFP4-mixed file (BFL / comfy-kitchen convention; the same arithmetic as
src/quant/nvfp4_quantizer.cpp): the quantizer, BFL's tensor names, the layers kept in NVFP4, the calibration of
their input scales, and the self-test file tests/demo_nvfp4_test.cpp compares with flux2's quantizer."""
import json
import math

import torch

from latent_layout import image_ids, text_ids
from models import encode_text

E4M3_MAX, E2M1_MAX = 448.0, 6.0


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

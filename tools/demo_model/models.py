"""The demo model's three parts in the real architectures (Qwen3 text encoder, FLUX.2 transformer, FLUX.2 VAE): built
new, or read back from an earlier run's output."""
import math
import os

import torch

from common import log

TEXT_LAYERS = (9, 18, 27)  # Flux2KleinPipeline's text_encoder_out_layers


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

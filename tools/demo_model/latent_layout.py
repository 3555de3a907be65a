"""The FLUX.2 latent layout (FLUX2_SPEC.md 2.3): patchified 128-channel latents packed to tokens, their position ids,
and the pipelines' shifted sigma schedule."""
import math

import torch


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

"""The training data: scenes rendered by worker processes (scenes.render_seed) and their captions tokenized with the
real Qwen3 tokenizer exactly as Flux2KleinPipeline does (chat template, right padding)."""
import gzip
import multiprocessing as mp
import os
import shutil
import tempfile

import numpy as np

import scenes


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

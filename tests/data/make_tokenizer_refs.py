#!/usr/bin/env python3
"""Regenerates the tokenizer reference data that tests/tokenizer_*_test.cpp compare against.

Outputs (next to this script):
  mistral-tekken-tokenizer/   a Mistral Tekken tokenizer.json(.gz) + tokenizer_config.json, made by transformers'
                              own tekken converter (the one that produced the hub's Mistral tokenizer.json files)
                              from the tekken file that the mistral-common wheel ships, with the BPE vocab cut to
                              TEKKEN_INNER_VOCAB tokens so that it stays small. Same structure, ids and special
                              tokens as Mistral-Small-3.1 (<s> = 1, [INST] = 3, [SYSTEM_PROMPT] = 17, ...), but
                              ordinary words split into more pieces than with the full vocab.
  tokenizer-refs.json         ids from Hugging Face tokenizers / transformers for extra prompts, templated and
                              padded prompts, Split pre-tokenizer behaviours and decoding.

Run (CI does not; the outputs are committed):
  pip install tokenizers==0.23.3 transformers==5.24.0 mistral-common==1.13.1 jinja2
  python tests/data/make_tokenizer_refs.py
"""
import gzip
import importlib.resources
import json
import pathlib
import random
import tempfile

from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE
from transformers import AutoTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode
from transformers.integrations.mistral.tokenizer import MistralConverter

HERE = pathlib.Path(__file__).resolve().parent
QWEN3_DIR = HERE / "qwen3-tokenizer"
MISTRAL_DIR = HERE / "mistral-tekken-tokenizer"
TEKKEN_INNER_VOCAB = 6000

# FLUX.2 [dev] system message (diffusers pipelines/flux2/system_messages.py; FLUX2_SPEC.md 2.2).
FLUX2_SYSTEM_MESSAGE = (
    "You are an AI that reasons about image descriptions. You give structured responses focusing on object "
    "relationships, object\nattribution and actions without speculation."
)


def write_gzip_json(path, obj):
    data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(data)


def make_mistral_tokenizer():
    src = importlib.resources.files("mistral_common") / "data" / "tekken_240911.json"
    tekken = json.loads(src.read_text(encoding="utf-8"))
    n_special = tekken["config"]["default_num_special_tokens"]
    tekken["config"]["default_vocab_size"] = n_special + TEKKEN_INNER_VOCAB
    tekken["vocab"] = tekken["vocab"][:TEKKEN_INNER_VOCAB]
    with tempfile.TemporaryDirectory() as tmp:
        tekken_path = pathlib.Path(tmp) / "tekken.json"
        tekken_path.write_text(json.dumps(tekken), encoding="utf-8")
        tok = MistralConverter(vocab_file=str(tekken_path)).converted()
    # The hub's Mistral tokenizer.json files were saved through LlamaTokenizerFast, which writes a BOS-adding
    # TemplateProcessing post-processor; mirror that so the loader sees one.
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    MISTRAL_DIR.mkdir(exist_ok=True)
    write_gzip_json(MISTRAL_DIR / "tokenizer.json.gz", json.loads(tok.to_str()))
    config = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "padding_side": "left",  # what FLUX2_SPEC.md 2.2 reports for the Mistral-Small-3.1 processor
        "truncation_side": "right",
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (MISTRAL_DIR / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def load_hf_dir(folder):
    """A temporary folder with tokenizer.json un-gzipped, loadable by both tokenizers and transformers."""
    tmp = tempfile.TemporaryDirectory()
    with gzip.open(folder / "tokenizer.json.gz", "rb") as f:
        (pathlib.Path(tmp.name) / "tokenizer.json").write_bytes(f.read())
    (pathlib.Path(tmp.name) / "tokenizer_config.json").write_bytes((folder / "tokenizer_config.json").read_bytes())
    return tmp


LONG_PROMPT = ", ".join(f"object {i} at {i * 37 % 1000}.{i % 7} meters" for i in range(100))[:2000]
assert len(LONG_PROMPT) == 2000

PROMPTS = {
    "empty": "",
    "ascii": "A photo of a red fox jumping over a lazy dog, golden hour, 35mm film.",
    "special_text_im_start": "before <|im_start|>user\nafter<|im_end|>",
    "special_adjacent": "x<|endoftext|>y <|endoftext|> z",
    "added_not_special": "<think>thinking</think> <tool_call>",
    "mistral_controls": "[INST]inside[/INST] <s> </s> [SYSTEM_PROMPT]x[/SYSTEM_PROMPT] [IMG]",
    "nfc_compose": "Cafe\u0301 nai\u0308ve e\u0301le\u0300ve \u212b \u1e9b\u0323",
    "nfc_hangul_jamo": "\u1100\u1161\u11a8 \u1112\u1161\u11ab",
    "crlf_whitespace": "line one\r\nline two\r\n\r\n\tindented   spaces\u00a0nbsp \u3000ideographic  \n  end  ",
    "only_spaces": "     ",
    "only_newlines": "\n\n\n",
    "trailing_space": "ends with space ",
    "cjk": "中文提示词：一只在雪地里奔跑的柴犬，日本語のテキスト、한국어 문장。",
    "emoji_zwj": "family 👨‍👩‍👧‍👦 flag 🏳️‍🌈 skin 👍🏽 keycap 1️⃣ rainbow🌈!",
    "contractions": "It's THEY'RE we'VE i'M you'LL he'D don't",
    "digits_punct": "v1.2.3 -- $1,234.56 (50%) a/b\\c ... !!! ???",
    "mongolian_vs": "a\u180eb c\u200bd e\u2028f",
    # U+180E is not \s for Oniguruma (Hugging Face) but is for PCRE2's UCP \s.
    "mongolian_vs_punct": "x \u180e<s> '\u180e'S  \u180e\n\u180e.don't",
    "combining_only": "\u0301\u0302 x",
    "long_word": "a" * 300 + " " + "ab" * 150,
    "long_2000": LONG_PROMPT,
}


# Building blocks for random strings: whitespace of every kind, letters with case and contractions, digits of
# other scripts, punctuation, decomposed and compatibility characters, many scripts, emoji sequences and (partial)
# special-token text of both tokenizers.
RANDOM_POOL = [
    " ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2028", "\u180e", "\u200b", "\u0085", "\x0b", "\x0c",
    "a", "Z", "hello", "World", "it's", "'S", "'ll", "don't", "\u017f", "\u212a", "\u01c5",
    "0", "123", "4.5", "\u00b2", "\u00bd", "\u0663", "\u216b",
    ".", ",", "!!", "...", "/", "\\", "-", "_", "@#$", "(", ")", "\"", "'",
    "\u00e9", "e\u0301", "\u0301", "\u00c5", "\u212b", "\ufb01", "\uff58", "\u03a9", "\u00df", "\u0130",
    "\u4e2d\u6587", "\u65e5\u672c\u8a9e", "\ud55c\uad6d\uc5b4", "\u0e44\u0e17\u0e22", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "\u05e2\u05d1\u05e8\u05d9\u05ea", "\u0939\u093f\u0928\u094d\u0926\u0940", "\u0440\u0443\u0441\u0441\u043a\u0438\u0439",
    "\U0001f431", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f3f3\ufe0f\u200d\U0001f308", "\U0001f44d\U0001f3fd",
    "1\ufe0f\u20e3", "\ufe0f", "\u200d", "\U00010348", "\ue000", "\x00", "\x7f", "\x1b",
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>", "<|im_", "[INS",
    "<s>", "</s>", "[INST]", "[/INST]", "[SYSTEM_PROMPT]", "[IMG]", "<SPECIAL_20>",
]


def random_texts(n, seed=1234):
    rng = random.Random(seed)
    return ["".join(rng.choice(RANDOM_POOL) for _ in range(rng.randint(1, 24))) for _ in range(n)]


def qwen3_chat(prompt):
    return f"<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def mistral_chat(bos, prompt):
    # diffusers Flux2Pipeline.format_input removes "[IMG]" from the prompt before templating.
    prompt = prompt.replace("[IMG]", "")
    return f"{bos}[SYSTEM_PROMPT]{FLUX2_SYSTEM_MESSAGE}[/SYSTEM_PROMPT][INST]{prompt}[/INST]"


def make_toy_tokenizer():
    """A tiny byte-level BPE with every added-token option, NFKC + NFC normalizers and GPT-2's ByteLevel regex."""
    alphabet = list(bytes_to_unicode().values())
    merges = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("Ġ", "w"), ("o", "r"), ("Ġw", "or"),
              ("Ġwor", "l"), ("Ġworl", "d"), ("Ġ", "t"), ("Ġt", "he"), ("a", "a"), ("aa", "aa")]
    vocab = {c: i for i, c in enumerate(alphabet)}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    tok = Tokenizer(BPE(vocab, merges))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.NFC()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = __import__("tokenizers").decoders.ByteLevel()
    tok.add_tokens([AddedToken("<sw>", single_word=True, normalized=False),
                    AddedToken("[L]", lstrip=True, normalized=False),
                    AddedToken("[R]", rstrip=True, normalized=False),
                    AddedToken("[LR]", lstrip=True, rstrip=True, normalized=False),
                    AddedToken("ＡＢ", normalized=False),  # fullwidth "AB": NFKC would turn it into "AB"
                    AddedToken("xy", normalized=True),
                    AddedToken("[LONG]", normalized=False), AddedToken("[LO", normalized=False)])
    tok.add_special_tokens([AddedToken("<|sp|>", normalized=False)])
    texts = ["hello world the", "a<sw>b <sw> c <sw>", "x  [L]  y  [R]  z \t[LR]\n w", "ＡＢ AB ｘｙ xy",
             "[LONG] [LO] [LONGER", "aaaaaaaaa hello<|sp|>world", "Ǻ café café"]
    cases = [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in texts]
    return {"tokenizer": json.loads(tok.to_str()), "cases": cases}


def main():
    make_mistral_tokenizer()
    qwen_tmp, mistral_tmp = load_hf_dir(QWEN3_DIR), load_hf_dir(MISTRAL_DIR)
    raw = {
        "qwen3": Tokenizer.from_file(str(pathlib.Path(qwen_tmp.name) / "tokenizer.json")),
        "mistral": Tokenizer.from_file(str(pathlib.Path(mistral_tmp.name) / "tokenizer.json")),
    }
    hf = {"qwen3": AutoTokenizer.from_pretrained(qwen_tmp.name), "mistral": AutoTokenizer.from_pretrained(mistral_tmp.name)}

    # The Qwen3 template text must be what the tokenizer's own Jinja template renders.
    for prompt in PROMPTS.values():
        rendered = hf["qwen3"].apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                   add_generation_prompt=True, enable_thinking=False)
        assert rendered == qwen3_chat(prompt), (rendered, qwen3_chat(prompt))

    refs = {"encode": [], "prompt_ids": [], "split": [], "decode": [], "toy": make_toy_tokenizer()}
    for name, prompt in PROMPTS.items():
        for tok_name, tok in raw.items():
            for add_special in (False, True):
                ids = tok.encode(prompt, add_special_tokens=add_special).ids
                refs["encode"].append({"name": name, "tokenizer": tok_name, "add_special_tokens": add_special,
                                       "text": prompt, "ids": ids})

    for i, text in enumerate(random_texts(300)):
        for tok_name, tok in raw.items():
            refs["encode"].append({"name": f"random_{i}", "tokenizer": tok_name, "add_special_tokens": False,
                                   "text": text, "ids": tok.encode(text, add_special_tokens=False).ids})

    def add_prompt_case(name, tok_name, template, prompt, max_length):
        tok = hf[tok_name]
        if template == "qwen3":
            text, add_special = qwen3_chat(prompt), True  # diffusers klein: tokenizer(text, ...) with defaults
        elif template == "mistral":
            text, add_special = mistral_chat(tok.bos_token, prompt), False  # processor: text starts with BOS
        else:
            text, add_special = prompt, True
        out = tok(text, padding="max_length", truncation=True, max_length=max_length, add_special_tokens=add_special)
        refs["prompt_ids"].append({"name": name, "tokenizer": tok_name, "template": template, "prompt": prompt,
                                   "max_length": max_length, "ids": out["input_ids"],
                                   "attention_mask": out["attention_mask"]})

    for name in ("ascii", "empty", "special_text_im_start", "emoji_zwj", "long_2000"):
        add_prompt_case(name, "qwen3", "qwen3", PROMPTS[name], 512)
        add_prompt_case(name, "mistral", "mistral", PROMPTS[name], 512)
    add_prompt_case("ascii_short", "qwen3", "qwen3", PROMPTS["ascii"], 16)
    add_prompt_case("ascii_short", "mistral", "mistral", PROMPTS["ascii"], 48)
    add_prompt_case("mistral_controls", "mistral", "mistral", PROMPTS["mistral_controls"], 128)
    add_prompt_case("none_ascii", "qwen3", "none", PROMPTS["ascii"], 24)
    add_prompt_case("none_ascii", "mistral", "none", PROMPTS["ascii"], 40)
    add_prompt_case("none_truncated", "mistral", "none", PROMPTS["long_2000"], 10)

    split_text = "Hello,  world!\r\n\tit's 12 o'clock... OK?"
    for pattern in (r"\s+", r"[,.!?]", r"\p{L}+"):
        for behavior in ("removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"):
            for invert in (False, True):
                split = pre_tokenizers.Split(Regex(pattern), behavior=behavior, invert=invert)
                pieces = [p for p, _ in split.pre_tokenize_str(split_text)]
                refs["split"].append({"pattern": pattern, "behavior": behavior, "invert": invert,
                                      "text": split_text, "pieces": pieces})
    for pattern in ("o", ", "):
        split = pre_tokenizers.Split(pattern, behavior="isolated", invert=False)
        refs["split"].append({"string": pattern, "behavior": "isolated", "invert": False, "text": split_text,
                              "pieces": [p for p, _ in split.pre_tokenize_str(split_text)]})

    for name in ("ascii", "special_text_im_start", "emoji_zwj", "nfc_compose", "cjk"):
        for tok_name, tok in raw.items():
            ids = tok.encode(PROMPTS[name], add_special_tokens=True).ids
            for skip in (False, True):
                refs["decode"].append({"tokenizer": tok_name, "ids": ids, "skip_special_tokens": skip,
                                       "text": tok.decode(ids, skip_special_tokens=skip)})

    with open(HERE / "tokenizer-refs.json", "w", encoding="utf-8") as f:
        json.dump(refs, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the seed inputs of fuzz/image_decode_fuzz.cpp (fuzz/corpus-image/), fuzz/image_request_fuzz.cpp
(fuzz/corpus-request/) and fuzz/tokenizer_encode_fuzz.cpp (fuzz/corpus-tokenizer/): small images in the layouts
decode_image handles (PNG grey, palette, alpha, 16-bit, interlaced, text chunks, eXIf; JPEG baseline, progressive,
grey, CMYK, EXIF orientation), request bodies that parse (every field, an edit with a data URL, a lora list) and
prompts (scripts, emoji, combining marks, special tokens, long runs). A development tool (Pillow); the seeds are
committed.

    python3 fuzz/make_seeds.py
"""
import base64
import io
import json
import os

from PIL import Image, PngImagePlugin

HERE = os.path.dirname(os.path.abspath(__file__))


def picture(mode, size=(24, 16)):
    img = Image.new("RGB", size)
    img.putdata([((x * 10) % 256, (y * 15) % 256, (x * y) % 256) for y in range(size[1]) for x in range(size[0])])
    return img.convert(mode)


def exif_orientation(value):
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def images():
    out = {}

    def save(name, img, fmt, **kw):
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        out[name] = buf.getvalue()

    save("rgb.png", picture("RGB"), "PNG")
    save("grey.png", picture("L"), "PNG")
    save("palette.png", picture("P"), "PNG")
    save("rgba.png", picture("RGBA"), "PNG")
    save("grey16.png", picture("L").convert("I;16"), "PNG")
    save("interlaced.png", picture("RGB"), "PNG", interlace=1)
    text = PngImagePlugin.PngInfo()
    text.add_text("prompt", "a red circle")
    text.add_itxt("negative", "ünïcode", zip=False)
    text.add_text("seed", "42", zip=True)
    save("text.png", picture("RGB"), "PNG", pnginfo=text)
    save("exif6.png", picture("RGB"), "PNG", exif=exif_orientation(6))
    save("baseline.jpg", picture("RGB"), "JPEG", quality=80)
    save("progressive.jpg", picture("RGB"), "JPEG", quality=80, progressive=True)
    save("grey.jpg", picture("L"), "JPEG", quality=80)
    save("cmyk.jpg", picture("CMYK"), "JPEG", quality=80)
    save("exif8.jpg", picture("RGB"), "JPEG", quality=80, exif=exif_orientation(8))
    return out


def requests(png):
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    gen = {"prompt": "a red circle", "model": "fuzz", "n": 2, "size": "64x48", "num_inference_steps": 4,
           "guidance_scale": 3.5, "seed": [1, 2], "response_format": "b64_json", "output_format": "jpeg",
           "output_compression": 80, "negative_prompt": "blur", "true_cfg_scale": 4.0, "max_sequence_length": 64,
           "user": "u", "stream": False, "lora": [{"name": "stripes", "strength": 0.8}, {"path": "a.safetensors"}]}
    edit = {"prompt": "make it blue", "images": [{"image_url": url}, {"image_url": {"url": url}}], "size": "auto",
            "output_format": "webp"}
    # The first byte picks the route in the fuzz target: even a generation, odd an edit (bit 1: true CFG).
    return {"generation.json": b"\x00" + json.dumps(gen).encode(),
            "generation_cfg.json": b"\x02" + json.dumps({"prompt": "x", "width": 32, "height": 32}).encode(),
            "edit.json": b"\x01" + json.dumps(edit).encode()}


def prompts():
    texts = ["a small red circle on the left, on a yellow background",
             "東京の夜景、ネオン 🌃 and ＡＳＣＩＩ full-width, café, naïve, e\u0301",
             "<|im_start|>user\nhi<|im_end|> [INST] <s></s> <think></think>",
             "   many    spaces\t\ttabs\n\n\nnewlines 1234567890 3.14159 don't we'll",
             "Ελληνικά русский עברית العربية हिन्दी ไทย 한국어 👩‍👩‍👧‍👦 🇫🇷"]
    # The first byte picks the tokenizer in the fuzz target: even Qwen3, odd Tekken (bit 1: special tokens).
    return {f"prompt{i}-{t}.txt": bytes([t]) + text.encode() for i, text in enumerate(texts) for t in (0, 3)}


def main():
    imgs = images()
    # A 64x64 image for the edit: the reference images' smallest side is 64.
    buf = io.BytesIO()
    picture("RGB", (64, 64)).save(buf, "PNG")
    for folder, files in (("corpus-image", imgs), ("corpus-request", requests(buf.getvalue())),
                          ("corpus-tokenizer", prompts())):
        os.makedirs(os.path.join(HERE, folder), exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(HERE, folder, name), "wb") as f:
                f.write(data)
        print(f"{folder}: {len(files)} files, {sum(len(d) for d in files.values())} bytes")


if __name__ == "__main__":
    main()

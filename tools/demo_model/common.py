"""What every stage of the demo model's training shares: where the repository is, the clock the logs and budgets
count from, the device, and the writers of JSON and image sheets."""
import json
import os
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
T0 = time.time()  # the process's start, as near as imports get: every --time-budget-s counts from it


def log(*parts):
    print(f"[{time.time() - T0:7.1f}s]", *parts, flush=True)


def select_device(name):
    """--device: auto (cuda when there is one), cuda or cpu."""
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # tiny Adam/EMA values otherwise slow CPU steps down tenfold
    return device


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


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

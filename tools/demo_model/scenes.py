#!/usr/bin/env python3
"""Procedural scenes for the flux2.cpp demo model (docs/DEMO_MODEL.md): 128x128 RGB images of 1-3 flat shapes on a
plain background, each with a caption built from the scene and a structured expectation that `flux2 eval` checks.

Only numpy and Pillow. Everything is deterministic: a scene is a pure function of its seed (numpy's PCG64), and
the render is a pure function of the scene.

Layout: the image is a 3x3 grid of cells; every shape sits in its own cell (jittered a little around the cell's
centre, never leaving it), so the checker can verify a position by the cell its region's centroid falls in.

    python3 scenes.py --eval-prompts ../../assets/demo_eval_prompts.json   # the fixed evaluation list (committed)
    python3 scenes.py --examples DIR                        # a few renders + expectations (tests/data/demo)
    python3 scenes.py --eval-renders DIR                    # the generator's image for each evaluation prompt
    python3 scenes.py --grid preview.png --count 16         # a contact sheet of random training scenes
"""
import argparse
import json
import os
import sys
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

IMAGE_SIZE = 128
GRID = 3
SUPERSAMPLE = 2  # shapes are drawn at 2x and box-filtered down, so edges are anti-aliased

# Named colours, far apart in RGB, so that a pixel's nearest name is
# unambiguous even after a lossy VAE (the closest pair, blue/purple, is 137 apart). The checker reads this table
# from the evaluation list (assets/demo_eval_prompts.json).
COLOURS = {
    "red": (230, 30, 30),
    "green": (30, 190, 50),
    "blue": (30, 70, 230),
    "yellow": (245, 225, 30),
    "purple": (160, 40, 200),
    "cyan": (40, 215, 225),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 18, "large": 34}  # bounding-box side in pixels (before jitter)
SIZE_JITTER = 2
POSITION_JITTER = 3
# Cell (row, col) -> phrase. Row 0 is the top.
POSITIONS = {
    (0, 0): "top left",
    (0, 1): "top",
    (0, 2): "top right",
    (1, 0): "left",
    (1, 1): "center",
    (1, 2): "right",
    (2, 0): "bottom left",
    (2, 1): "bottom",
    (2, 2): "bottom right",
}
POSITION_PHRASE = {
    "top left": "at the top left",
    "top": "at the top",
    "top right": "at the top right",
    "left": "on the left",
    "center": "in the center",
    "right": "on the right",
    "bottom left": "at the bottom left",
    "bottom": "at the bottom",
    "bottom right": "at the bottom right",
}
# (colour, shape) pairs that never appear in training, to measure generalisation to unseen combinations.
HELD_OUT = {("green", "triangle"), ("blue", "circle"), ("yellow", "square")}


@dataclass
class Shape:
    kind: str  # circle | square | triangle
    colour: str
    size: str  # small | large
    position: str  # a POSITIONS value
    # Render-only details (jitter), not part of the caption or expectation.
    dx: int = 0
    dy: int = 0
    side: int = 0


@dataclass
class Scene:
    background: str
    shapes: list = field(default_factory=list)

    def caption(self):
        parts = [f"a {s.size} {s.colour} {s.kind} {POSITION_PHRASE[s.position]}" for s in self.shapes]
        return " and ".join(parts) + f", on a {self.background} background"

    def expectation(self):
        return {
            "background": self.background,
            "shapes": [{"shape": s.kind, "colour": s.colour, "size": s.size, "position": s.position}
                       for s in self.shapes],
        }

    def is_held_out(self):
        return any((s.colour, s.kind) in HELD_OUT for s in self.shapes)


def cell_of(position):
    for cell, name in POSITIONS.items():
        if name == position:
            return cell
    raise ValueError(f"unknown position {position!r}")


def sample_scene(rng, held_out="exclude", n_shapes=None):
    """A random scene. held_out: "exclude" (training: no held-out pair), "require" (at least one) or "any"."""
    colour_names = list(COLOURS)
    while True:
        n = int(rng.integers(1, 4)) if n_shapes is None else n_shapes
        cells = rng.choice(len(POSITIONS), size=n, replace=False)
        background = colour_names[int(rng.integers(len(colour_names)))]
        shapes = []
        for c in cells:
            colour = background
            while colour == background:
                colour = colour_names[int(rng.integers(len(colour_names)))]
            kind = SHAPES[int(rng.integers(len(SHAPES)))]
            size = "small" if rng.random() < 0.5 else "large"
            shapes.append(Shape(kind=kind, colour=colour, size=size, position=list(POSITIONS.values())[int(c)],
                                dx=int(rng.integers(-POSITION_JITTER, POSITION_JITTER + 1)),
                                dy=int(rng.integers(-POSITION_JITTER, POSITION_JITTER + 1)),
                                side=SIZES[size] + int(rng.integers(-SIZE_JITTER, SIZE_JITTER + 1))))
        scene = Scene(background=background, shapes=shapes)
        if held_out == "exclude" and scene.is_held_out():
            continue
        if held_out == "require" and not scene.is_held_out():
            continue
        return scene


def scene_for_seed(seed, held_out="exclude"):
    return sample_scene(np.random.default_rng(seed), held_out=held_out)


def _shape_mask(shape, yy, xx):
    """Boolean mask of one shape at sample points (yy, xx), in output-pixel units."""
    row, col = cell_of(shape.position)
    cell = IMAGE_SIZE / GRID
    cx = (col + 0.5) * cell + shape.dx
    cy = (row + 0.5) * cell + shape.dy
    h = (shape.side or SIZES[shape.size]) / 2.0
    if shape.kind == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= h * h
    if shape.kind == "square":
        return (np.abs(xx - cx) <= h) & (np.abs(yy - cy) <= h)
    if shape.kind == "triangle":
        # Apex up, base at the bottom of the bounding box; the half-width grows linearly from apex to base.
        t = (yy - (cy - h)) / (2 * h)
        return (t >= 0) & (t <= 1) & (np.abs(xx - cx) <= t * h)
    raise ValueError(f"unknown shape {shape.kind!r}")


def _window(shape):
    """Output-pixel box [y0, y1) x [x0, x1) that holds the whole shape."""
    row, col = cell_of(shape.position)
    cell = IMAGE_SIZE / GRID
    cx = (col + 0.5) * cell + shape.dx
    cy = (row + 0.5) * cell + shape.dy
    h = (shape.side or SIZES[shape.size]) / 2.0 + 1
    y0, y1 = max(0, int(np.floor(cy - h))), min(IMAGE_SIZE, int(np.ceil(cy + h)))
    x0, x1 = max(0, int(np.floor(cx - h))), min(IMAGE_SIZE, int(np.ceil(cx + h)))
    return y0, y1, x0, x1


STRIPE_PERIOD = 16  # the demo LoRA's style: horizontal bands, STRIPE_PERIOD / 2 px of each shade


def stripe_shade(background):
    """The second shade of a striped background: the colour darkened, or grey for black (darker cannot show)."""
    c = np.asarray(COLOURS[background], np.float32)
    return np.full(3, 100, np.float32) if c.max() < 60 else c * 0.55


def render(scene, stripes=False):
    """uint8 [128, 128, 3]. Each shape's coverage of a pixel is the fraction of its SUPERSAMPLE^2 sample points
    inside the shape; the pixel is the coverage-weighted mix of shape and what lies below. `stripes` draws the
    background as horizontal bands of its colour and stripe_shade() (the demo LoRA's training data)."""
    img = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.float32)
    img[:] = COLOURS[scene.background]
    if stripes:
        rows = (np.arange(IMAGE_SIZE) % STRIPE_PERIOD) >= STRIPE_PERIOD // 2
        img[rows] = stripe_shade(scene.background)
    offsets = (np.arange(SUPERSAMPLE, dtype=np.float32) + 0.5) / SUPERSAMPLE
    for s in scene.shapes:
        y0, y1, x0, x1 = _window(s)
        ys = (np.arange(y0, y1, dtype=np.float32)[:, None] + offsets[None, :]).reshape(-1)
        xs = (np.arange(x0, x1, dtype=np.float32)[:, None] + offsets[None, :]).reshape(-1)
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        m = _shape_mask(s, yy, xx).astype(np.float32)
        cov = m.reshape(y1 - y0, SUPERSAMPLE, x1 - x0, SUPERSAMPLE).mean(axis=(1, 3))[..., None]
        win = img[y0:y1, x0:x1]
        img[y0:y1, x0:x1] = win * (1 - cov) + np.asarray(COLOURS[s.colour], np.float32) * cov
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def render_seed(seed, held_out="exclude", stripes=False):
    """(image, caption) for a training seed; used by train.py's data workers."""
    scene = scene_for_seed(seed, held_out)
    return render(scene, stripes), scene.caption()


# ---- the fixed evaluation list ----

def eval_scenes(seen=24, heldout=16):
    """`seen` prompts (only training pairs; the exact captions are random, so mostly new sentences) and `heldout`
    prompts (each with at least one held-out colour/shape pair). Fixed seeds, so a list of given sizes never
    changes; the default sizes are assets/demo_eval_prompts.json, 120 + 80 its long version."""
    out = []
    rng = np.random.default_rng(20261201)
    for i in range(seen):
        out.append(("seen", sample_scene(rng, held_out="exclude", n_shapes=1 + i % 3)))
    for i in range(heldout):
        out.append(("heldout", sample_scene(rng, held_out="require", n_shapes=1 + i % 3)))
    return out


def palette_json():
    return {name: list(rgb) for name, rgb in COLOURS.items()}


def eval_prompts_json(seen=24, heldout=16):
    prompts = []
    for i, (split, scene) in enumerate(eval_scenes(seen, heldout)):
        e = scene.expectation()
        prompts.append({"id": f"{split}-{i:02d}", "split": split, "prompt": scene.caption(), "seed": 1000 + i,
                        "background": e["background"], "shapes": e["shapes"]})
    return {
        "version": 1,
        "generator": "tools/demo_model/scenes.py",
        "image_size": IMAGE_SIZE,
        "grid": GRID,
        "colours": palette_json(),
        "sizes": dict(SIZES),
        "held_out_pairs": sorted([list(p) for p in HELD_OUT]),
        "prompts": prompts,
    }


def write_json(path, obj):
    """One line per top-level key and per prompt, so that diffs of the committed lists stay readable."""
    lines = []
    for key, value in obj.items():
        if key == "prompts":
            items = ",\n".join("  " + json.dumps(p) for p in value)
            lines.append(f' "prompts": [\n{items}\n ]')
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}")
    with open(path, "w") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")


def write_examples(out_dir):
    """A few renders with their expectations, for the checker's own tests: one scene of each shape count, one
    held-out scene, and all three kinds and both sizes among them. Each PNG is the scene exactly as training sees
    it; expectations.json has the same format as the evaluation list (prompts[i].file names the PNG). The last entry,
    wrong1.png, does not match its expectation (the checker must fail it)."""
    os.makedirs(out_dir, exist_ok=True)
    scenes = [
        Scene("yellow", [Shape("circle", "red", "small", "left", 2, -1, 19)]),
        Scene("black", [Shape("square", "white", "large", "top right", -2, 3, 35),
                        Shape("triangle", "cyan", "large", "bottom left", 1, 2, 33)]),
        Scene("blue", [Shape("triangle", "yellow", "small", "center", 0, 0, 18),
                       Shape("circle", "purple", "large", "bottom", 3, -3, 36),
                       Shape("square", "green", "small", "top left", -3, 1, 16)]),
        Scene("white", [Shape("triangle", "green", "large", "right", -1, 0, 34),
                        Shape("circle", "blue", "small", "top", 2, 2, 20)]),
    ]
    prompts = []
    for i, scene in enumerate(scenes):
        name = f"scene{i}.png"
        Image.fromarray(render(scene)).save(os.path.join(out_dir, name))
        e = scene.expectation()
        prompts.append({"id": f"example-{i}", "split": "heldout" if scene.is_held_out() else "seen",
                        "prompt": scene.caption(), "seed": 0, "file": name, "background": e["background"],
                        "shapes": e["shapes"]})
    # A deliberately wrong render for the prompt of scene 1: the white square drawn at the top left instead of the
    # top right, and the cyan triangle drawn as a circle.
    wrong = Scene("black", [Shape("square", "white", "large", "top left", -2, 3, 35),
                            Shape("circle", "cyan", "large", "bottom left", 1, 2, 33)])
    Image.fromarray(render(wrong)).save(os.path.join(out_dir, "wrong1.png"))
    prompts.append(dict(prompts[1], id="wrong-1", file="wrong1.png"))
    doc = eval_prompts_json()
    doc["prompts"] = prompts
    write_json(os.path.join(out_dir, "expectations.json"), doc)


def write_eval_renders(out_dir):
    """The generator's own image for every prompt of the evaluation list, as <id>.png: `flux2 eval --check-images`
    must score them 100% (tests/data/demo/eval)."""
    os.makedirs(out_dir, exist_ok=True)
    for i, (split, scene) in enumerate(eval_scenes()):
        Image.fromarray(render(scene)).save(os.path.join(out_dir, f"{split}-{i:02d}.png"))


def write_grid(path, count, seed):
    cols = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / cols))
    sheet = np.zeros((rows * IMAGE_SIZE, cols * IMAGE_SIZE, 3), dtype=np.uint8)
    for i in range(count):
        img, cap = render_seed(seed + i)
        print(f"{seed + i}: {cap}")
        r, c = divmod(i, cols)
        sheet[r * IMAGE_SIZE:(r + 1) * IMAGE_SIZE, c * IMAGE_SIZE:(c + 1) * IMAGE_SIZE] = img
    Image.fromarray(sheet).save(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eval-prompts", help="write the evaluation prompt list (JSON) here")
    ap.add_argument("--eval-size", default="24,16",
                    help="SEEN,HELDOUT prompts of --eval-prompts: 24,16 is assets/demo_eval_prompts.json, 120,80 "
                    "assets/demo_eval_prompts_long.json")
    ap.add_argument("--examples", help="write example renders and expectations.json into this folder")
    ap.add_argument("--eval-renders", help="write the generator's render of every evaluation prompt into this folder")
    ap.add_argument("--grid", help="write a contact sheet of random training scenes here")
    ap.add_argument("--count", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not (args.eval_prompts or args.examples or args.eval_renders or args.grid):
        ap.error("nothing to do: give --eval-prompts, --examples, --eval-renders or --grid")
    if args.eval_prompts:
        seen, heldout = (int(x) for x in args.eval_size.split(","))
        write_json(args.eval_prompts, eval_prompts_json(seen, heldout))
    if args.examples:
        write_examples(args.examples)
    if args.eval_renders:
        write_eval_renders(args.eval_renders)
    if args.grid:
        write_grid(args.grid, args.count, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

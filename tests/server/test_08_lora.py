"""LoRAs through the server: a per-request `lora` list (by path under --lora-dir, then by name), the active set of
sglang's admin calls (/v1/set_lora, /v1/unmerge_lora_weights, /v1/list_loras), /v1/loras, and the errors; and the
trained demo model's own LoRA, which `flux2 serve` offers by default (assets/demo-lora).

The adapter files are written here, in diffusers' key format, for the demo model's input and output projections
(x_embedder 128 -> 256, proj_out 256 -> 128); a third one is shaped for another model."""
import json
import os
import random
import shutil
import struct
import tempfile

from common import Server, ServerTestCase, decode_image


def write_lora(path, shapes, seed):
    """A safetensors file of F32 LoRA pairs: shapes = {module: (in, out)}, rank 4, small random values."""
    rng = random.Random(seed)
    tensors = {}
    for module, (fan_in, fan_out) in shapes.items():
        tensors[f"transformer.{module}.lora_A.weight"] = ([4, fan_in], [rng.gauss(0, 0.5) for _ in range(4 * fan_in)])
        tensors[f"transformer.{module}.lora_B.weight"] = ([fan_out, 4], [rng.gauss(0, 0.5) for _ in range(fan_out * 4)])
    header, offset, blobs = {}, 0, []
    for name, (shape, values) in tensors.items():
        blob = struct.pack(f"<{len(values)}f", *values)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))


class LoraTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="flux2-loras-")
        write_lora(os.path.join(cls.dir, "style.safetensors"), {"x_embedder": (128, 256), "proj_out": (256, 128)}, 1)
        write_lora(os.path.join(cls.dir, "other-model.safetensors"), {"x_embedder": (64, 256)}, 2)
        cls.server = Server("lora", "--lora-dir", cls.dir).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def pixels(self, **fields):
        r = self.server.generate(seed=3, **fields)
        self.assertEqual(r.status, 200, r)
        import base64
        return decode_image(base64.b64decode(r.json()["data"][0]["b64_json"])).tobytes()

    def test_per_request_and_default_sets(self):
        base = self.pixels()
        styled = self.pixels(lora=[{"path": "style.safetensors", "strength": 1.0}])
        self.assertNotEqual(styled, base, "the LoRA changed nothing")
        # Loaded once, then chosen by name; strength 0 is the base model exactly.
        self.assertEqual(self.pixels(lora=[{"name": "style.safetensors", "strength": 1.0}]), styled)
        self.assertEqual(self.pixels(lora=[{"name": "style.safetensors", "strength": 0.0}]), base)
        self.assertEqual(self.pixels(lora=[]), base)
        listing = self.server.request("GET", "/v1/loras").json()
        self.assertIn("style.safetensors", [d["name"] for d in listing["data"]])

        r = self.server.request("POST", "/v1/set_lora",
                                {"lora_nickname": "house", "lora_path": "style.safetensors", "strength": 1.0})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["status"], "ok")
        self.assertEqual(self.pixels(), styled, "a request without `lora` runs with the active set")
        sg = self.server.request("GET", "/v1/list_loras").json()
        self.assertEqual([a["nickname"] for a in sg["active"]["transformer"]], ["house"])
        self.assertIn("house", [a["nickname"] for a in sg["loaded_adapters"]])
        self.assertEqual(self.pixels(lora=[]), base, "an explicit empty list overrides the active set")

        r = self.server.request("POST", "/v1/unmerge_lora_weights", {})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.pixels(), base)

    def test_errors_name_the_field_and_leave_the_server_healthy(self):
        bad = [
            ([{"path": "../style.safetensors"}], 400, "lora[0].path"),
            ([{"path": "/etc/passwd"}], 400, "lora[0].path"),
            ([{"name": "nope"}], 400, "lora[0].name"),
            ([{"path": "missing.safetensors"}], 404, None),
            ([{"name": "a", "path": "b"}], 400, "lora[0]"),
            ([{"path": "style.safetensors", "strength": 1e9}], 400, "lora[0].strength"),
            ("style", 400, "lora"),
        ]
        for lora, status, param in bad:
            with self.subTest(lora=lora):
                self.assertError(self.server.generate(lora=lora), status, param=param)
        # A LoRA for another model is refused when it is attached; the model keeps working.
        r = self.server.generate(lora=[{"path": "other-model.safetensors"}])
        self.assertError(r, 400, code="invalid_lora")
        self.assertEqual(self.server.generate().status, 200)
        self.assertError(self.server.request("POST", "/v1/set_lora", {"lora_nickname": "ghost"}), 400,
                         param="lora_nickname")
        self.assertError(self.server.request("POST", "/v1/set_lora", {"lora_path": "style.safetensors"}), 400,
                         param="lora_nickname")


class NoLoraDirTest(ServerTestCase):
    def test_paths_need_a_lora_dir(self):
        server = Server("lora-nodir").start()
        try:
            self.assertError(server.generate(lora=[{"path": "style.safetensors"}]), 400, param="lora[0].path")
            self.assertEqual(server.request("GET", "/v1/loras").json()["data"], [])
        finally:
            server.stop()


def stripe_strength(img):
    """The mean change of the rows' median grey level 8 px (half a stripe period) apart: ~0 for a plain
    background, several grey levels for the demo LoRA's bands (as tests/demo_lora_cli_test.cpp)."""
    grey = img.convert("L")
    w, h = grey.size
    px = grey.load()
    medians = [sorted(px[x, y] for x in range(w))[w // 2] for y in range(h)]
    return sum(abs(medians[y] - medians[y + 8]) for y in range(h - 8)) / (h - 8)


class TrainedDemoLoraTest(ServerTestCase):
    def test_the_demo_lora_is_offered_by_default(self):
        # No FLUX2_DEMO_DIR: the trained demo model, whose --lora-dir defaults to assets/demo-lora.
        server = Server("lora-trained-demo", demo_dir=None).start()
        try:
            self.assertIn("demo-lora", server.log_tail())

            def image(**fields):
                r = server.generate(prompt="a large red circle on the left and a small blue square at the top right, "
                                    "on a yellow background", size="128x128", num_inference_steps=6, seed=7,
                                    **fields)
                self.assertEqual(r.status, 200, r)
                import base64
                return decode_image(base64.b64decode(r.json()["data"][0]["b64_json"]))

            plain = stripe_strength(image())
            striped = stripe_strength(image(lora=[{"path": "demo-stripes-lora-kohya.safetensors"}]))
            self.assertLess(plain, 3.0)
            self.assertGreater(striped, 8.0, f"stripe strength {striped:.2f} with the demo LoRA, {plain:.2f} without")
            listing = server.request("GET", "/v1/loras").json()["data"]
            self.assertEqual([(d["name"], d["format"]) for d in listing],
                             [("demo-stripes-lora-kohya.safetensors", "kohya")])
        finally:
            server.stop()

"""`flux2 serve --gpus N`: the transformer split over N ranks (here CPU ranks with the in-process communicator, the
way the development machines test it; on a GPU machine rank r is cuda:r). The served pixels must match
`flux2 generate` on one device (Ulysses, tp and Ulysses x tp within a level, CFG parallelism exactly), with a
request's LoRA too (each tensor-parallel rank cutting its part of the branch), and flags several ranks cannot take
must be refused clearly at start."""
import base64
import os
import shutil
import subprocess
import tempfile

import common
from common import Server, ServerTestCase, decode_image
from test_08_lora import write_lora

FIELDS = {"prompt": "a parallel lighthouse", "seed": 5, "size": "32x32", "num_inference_steps": 2}


class ParallelServeTest(ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="flux2-parallel-")
        reference = os.path.join(cls.tmp, "one.png")
        common.run_generate(reference, FIELDS["prompt"], FIELDS["seed"], 32, 32, FIELDS["num_inference_steps"])
        with open(reference, "rb") as f:
            cls.reference = decode_image(f.read()).convert("RGB").tobytes()
        write_lora(os.path.join(cls.tmp, "style.safetensors"), {"x_embedder": (128, 256)}, 1)
        styled = os.path.join(cls.tmp, "one-lora.png")
        common.run_generate(styled, FIELDS["prompt"], FIELDS["seed"], 32, 32, FIELDS["num_inference_steps"],
                            extra=["--lora", os.path.join(cls.tmp, "style.safetensors")])
        with open(styled, "rb") as f:
            cls.reference_lora = decode_image(f.read()).convert("RGB").tobytes()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_every_mode_matches_one_device(self):
        for gpus, mode, label in (("2", "ulysses", "Ulysses sequence parallelism"), ("2", "tp", "tensor parallelism"),
                                  ("4", "ulysses-tp", "Ulysses x tensor parallelism")):
            server = Server(f"gpus{gpus}-{mode}", "--gpus", gpus, "--parallel", mode, "--lora-dir", self.tmp).start()
            try:
                r = server.generate(**FIELDS)
                self.assertEqual(r.status, 200, r)
                got = decode_image(base64.b64decode(r.json()["data"][0]["b64_json"])).convert("RGB").tobytes()
                self.assertEqual(len(got), len(self.reference))
                # The sharded sums round differently in the last bits: at most one level in a pixel.
                worst = max(abs(a - b) for a, b in zip(got, self.reference))
                self.assertLessEqual(worst, 1, f"{mode}: pixels differ from one device by up to {worst}")
                with open(server.log_path, encoding="utf-8", errors="replace") as f:
                    self.assertIn(f"{label} on {gpus} cpu ranks", f.read())
                # A request's LoRA reaches every rank: the same pixels as one device with it.
                styled = server.generate(**FIELDS, lora=[{"path": "style.safetensors", "strength": 1.0}])
                self.assertEqual(styled.status, 200, styled)
                got = decode_image(base64.b64decode(styled.json()["data"][0]["b64_json"])).convert("RGB")
                worst = max(abs(a - b) for a, b in zip(got.tobytes(), self.reference_lora))
                self.assertLessEqual(worst, 1, f"{mode} + LoRA: pixels differ from one device by up to {worst}")
                self.assertNotEqual(got.tobytes(), self.reference)
                r = server.generate(**FIELDS)
                self.assertEqual(r.status, 200)
                got = decode_image(base64.b64decode(r.json()["data"][0]["b64_json"])).convert("RGB").tobytes()
                self.assertLessEqual(max(abs(a - b) for a, b in zip(got, self.reference)), 1, "LoRA left behind")
            finally:
                self.assertEqual(server.stop(), 0)

    def test_cfg_parallel_matches_one_device(self):
        reference = os.path.join(self.tmp, "base.png")
        common.run_generate(reference, FIELDS["prompt"], FIELDS["seed"], 32, 32, FIELDS["num_inference_steps"],
                            extra=["--klein-mode", "base"])
        with open(reference, "rb") as f:
            want = decode_image(f.read()).convert("RGB").tobytes()
        server = Server("gpus2-cfg", "--gpus", "2", "--parallel", "cfg", "--klein-mode", "base").start()
        try:
            r = server.generate(**FIELDS)
            self.assertEqual(r.status, 200, r)
            got = decode_image(base64.b64decode(r.json()["data"][0]["b64_json"])).convert("RGB").tobytes()
            # Each forward is the one-device computation: the same pixels exactly.
            self.assertEqual(got, want)
            with open(server.log_path, encoding="utf-8", errors="replace") as f:
                self.assertIn("CFG parallelism on 2 cpu ranks", f.read())
        finally:
            self.assertEqual(server.stop(), 0)

    def run_serve(self, *args):
        return subprocess.run([common.BINARY, "serve", "--port", "0", *args], env=common.demo_env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)

    def test_bad_parallel_flags_fail_at_start(self):
        offload = self.run_serve("--gpus", "2", "--offload", "model")
        self.assertNotEqual(offload.returncode, 0)
        self.assertIn(b"--offload model is for one device, not --gpus 2", offload.stdout)
        grid = self.run_serve("--gpus", "2", "--parallel", "ulysses-tp")
        self.assertNotEqual(grid.returncode, 0)
        self.assertIn(b"it needs --tp-size of at least 2 dividing --gpus into at least 2 rows", grid.stdout)
        heads = self.run_serve("--gpus", "3")
        self.assertNotEqual(heads.returncode, 0)
        self.assertIn(b"3 GPUs do not divide this model's 4 heads", heads.stdout)
        no_cfg = self.run_serve("--gpus", "2", "--parallel", "cfg", "--klein-mode", "distilled")
        self.assertNotEqual(no_cfg.returncode, 0)
        self.assertIn(b"has no unconditional forward (klein base only)", no_cfg.stdout)
        mode = self.run_serve("--gpus", "2", "--parallel", "ring")
        self.assertNotEqual(mode.returncode, 0)
        self.assertIn(b"--parallel must be ulysses, tp, ulysses-tp or cfg, got 'ring'", mode.stdout)


if __name__ == "__main__":
    import unittest
    unittest.main()

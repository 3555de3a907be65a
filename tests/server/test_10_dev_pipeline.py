"""A dev-style model behind `flux2 serve`: the tiny-dev pipeline (`flux2 bench --save-pipeline DIR --model tiny-dev`:
a Mistral-shaped NVFP4 text encoder with the Tekken tokenizer and dev's chat template, a transformer with the
guidance embedding), which the rest of the suite's klein-style demo does not exercise. Through the openai SDK its
pixels equal `flux2 generate`'s with the same settings, at the default guidance and at another one."""
import base64
import os
import shutil
import subprocess
import tempfile

from openai import OpenAI

import common

server = None
folder = None


def setUpModule():
    global server, folder
    folder = tempfile.mkdtemp(prefix="flux2-tiny-dev-")
    subprocess.run([common.BINARY, "bench", "--save-pipeline", folder, "--model", "tiny-dev"], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    server = common.Server("dev", "--model-path", folder, "--model-id", "flux2-tiny-dev").start()


def tearDownModule():
    if server:
        server.stop()
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


class DevPipelineTest(common.ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=300)
        cls.tmp = tempfile.mkdtemp(prefix="flux2-dev-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def cli_pixels(self, prompt, seed, width, height, steps, guidance=None):
        out = os.path.join(self.tmp, f"cli-{seed}-{guidance}.png")
        extra = ["--model-path", folder]
        if guidance is not None:
            extra += ["--guidance-scale", str(guidance)]
        common.run_generate(out, prompt, seed, width, height, steps, extra=extra)
        with open(out, "rb") as f:
            return common.decode_image(f.read())

    def test_generations_equal_cli_at_two_guidances(self):
        self.assertEqual([m.id for m in self.client.models.list().data], ["flux2-tiny-dev"])
        prompt, seed, w, h, steps = "a lighthouse at dusk", 5, 48, 32, 2
        for guidance in (None, 2.5):
            extra = {"seed": seed, "num_inference_steps": steps}
            if guidance is not None:
                extra["guidance_scale"] = guidance
            r = self.client.images.generate(prompt=prompt, size=f"{w}x{h}", response_format="b64_json",
                                            extra_body=extra)
            img = self.assertImage(base64.b64decode(r.data[0].b64_json), w, h)
            cli = self.cli_pixels(prompt, seed, w, h, steps, guidance)
            self.assertTrue(img.tobytes() == cli.tobytes(),
                            f"server pixels differ from `flux2 generate` at guidance {guidance}")
        # The two guidances draw different pictures (the guidance embedding is in use).
        a = self.cli_pixels(prompt, seed, w, h, steps, None)
        b = self.cli_pixels(prompt, seed, w, h, steps, 2.5)
        self.assertNotEqual(a.tobytes(), b.tobytes())
        self.assertIn("text encoder mistral", server.log_tail(400))

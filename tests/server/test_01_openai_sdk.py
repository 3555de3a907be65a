"""The server as the official openai Python SDK meets it: generations, edits, URLs, streaming, and pixels equal to
`flux2 generate` with the same settings."""
import base64
import io
import os
import tempfile
import urllib.request

from openai import OpenAI

import common

API_KEY = "sk-flux2-sdk-test"
server = None


def setUpModule():
    global server
    server = common.Server("sdk", "--model-id", "flux2-demo-sdk", api_key=API_KEY).start()


def tearDownModule():
    if server:
        server.stop()


class OpenAISdkTest(common.ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = OpenAI(base_url=f"{server.base_url}/v1", api_key=API_KEY, max_retries=0, timeout=300)
        cls.tmp = tempfile.mkdtemp(prefix="flux2-sdk-")
        cls.ref_a = os.path.join(cls.tmp, "a.png")
        cls.ref_b = os.path.join(cls.tmp, "b.jpg")
        with open(cls.ref_a, "wb") as f:
            f.write(common.png_bytes(80, 64, seed=1))
        with open(cls.ref_b, "wb") as f:
            f.write(common.jpeg_bytes(64, 80, seed=2))

    def cli_pixels(self, prompt, seed, width, height, steps, images=()):
        out = os.path.join(self.tmp, f"cli-{seed}-{width}x{height}-{len(images)}.png")
        common.run_generate(out, prompt, seed, width, height, steps, images)
        with open(out, "rb") as f:
            return common.decode_image(f.read())

    def assertSamePixels(self, server_png, cli_img):
        img = self.assertImage(server_png, *cli_img.size)
        self.assertEqual(img.mode, cli_img.mode)
        self.assertTrue(img.tobytes() == cli_img.tobytes(), "server pixels differ from `flux2 generate`")

    def test_models_list(self):
        models = self.client.models.list()
        ids = [m.id for m in models.data]
        self.assertEqual(ids, ["flux2-demo-sdk"])
        self.assertEqual(models.data[0].owned_by, "flux2.cpp")
        self.assertEqual(self.client.models.retrieve("flux2-demo-sdk").id, "flux2-demo-sdk")

    def test_generate_b64_equals_cli(self):
        prompt, seed, w, h, steps = "a lighthouse at dusk", 7, 64, 32, 2
        r = self.client.images.generate(prompt=prompt, size=f"{w}x{h}", response_format="b64_json",
                                        extra_body={"seed": seed, "num_inference_steps": steps})
        self.assertEqual(len(r.data), 1)
        self.assertTrue(r.created > 0)
        png = base64.b64decode(r.data[0].b64_json)
        self.assertTrue(png.startswith(common.PNG_MAGIC))
        self.assertEqual(r.data[0].revised_prompt, prompt)
        self.assertEqual(r.size, f"{w}x{h}")
        self.assertEqual(r.output_format, "png")
        self.assertIsNotNone(r.usage)
        self.assertSamePixels(png, self.cli_pixels(prompt, seed, w, h, steps))

    def test_generate_width_height_extension(self):
        r = self.client.images.generate(prompt="a teapot", extra_body={"width": 48, "height": 32, "seed": 3,
                                                                     "num_inference_steps": 1})
        self.assertImage(base64.b64decode(r.data[0].b64_json), 48, 32)

    def test_generate_url(self):
        r = self.client.images.generate(prompt="a blue bird", size="32x32", response_format="url",
                                        extra_body={"seed": 5, "num_inference_steps": 1})
        url = r.data[0].url
        self.assertTrue(url.startswith(f"{server.base_url}/v1/images/"), url)
        self.assertTrue(url.endswith("/content"), url)
        req = urllib.request.Request(url, headers={"Authorization": f"Bearer {API_KEY}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            self.assertEqual(resp.status, 200)
            data = resp.read()
        self.assertImage(data, 32, 32)

    def test_generate_n2_with_seed_list(self):
        r = self.client.images.generate(prompt="two cats", n=2, size="32x32",
                                        extra_body={"seed": [11, 12], "num_inference_steps": 1})
        self.assertEqual(len(r.data), 2)
        a, b = (base64.b64decode(d.b64_json) for d in r.data)
        self.assertImage(a, 32, 32)
        self.assertImage(b, 32, 32)
        self.assertNotEqual(a, b, "two seeds gave the same image")
        # `flux2 generate --num-images 2 --seed 11` uses seeds 11 and 12 in one batch, as the list asks
        folder = os.path.join(self.tmp, "batch")
        os.makedirs(folder, exist_ok=True)
        common.run_generate(folder, "two cats", 11, 32, 32, 1, num_images=2)
        files = sorted(f for f in os.listdir(folder) if f.endswith(".png"))
        self.assertEqual(len(files), 2, files)
        for got, name in zip((a, b), files):
            with open(os.path.join(folder, name), "rb") as f:
                self.assertSamePixels(got, common.decode_image(f.read()))

    def test_edit_one_image_equals_cli(self):
        prompt, seed, steps = "make it winter", 4, 2
        with open(self.ref_a, "rb") as f:
            r = self.client.images.edit(image=f, prompt=prompt,
                                        extra_body={"seed": seed, "num_inference_steps": steps})
        png = base64.b64decode(r.data[0].b64_json)
        # default size: the first reference's
        self.assertImage(png, 80, 64)
        self.assertSamePixels(png, self.cli_pixels(prompt, seed, 80, 64, steps, [self.ref_a]))

    def test_edit_two_images(self):
        prompt, seed, steps = "combine them", 9, 1
        with open(self.ref_a, "rb") as fa, open(self.ref_b, "rb") as fb:
            r = self.client.images.edit(image=[fa, fb], prompt=prompt, size="32x32",
                                        extra_body={"seed": seed, "num_inference_steps": steps})
        png = base64.b64decode(r.data[0].b64_json)
        self.assertImage(png, 32, 32)
        self.assertSamePixels(png, self.cli_pixels(prompt, seed, 32, 32, steps, [self.ref_a, self.ref_b]))

    def test_generate_stream(self):
        stream = self.client.images.generate(prompt="a stream of pixels", size="32x32", stream=True,
                                             extra_body={"seed": 2, "num_inference_steps": 2})
        types, completed = [], None
        for event in stream:
            types.append(event.type)
            if event.type == "image_generation.completed":
                completed = event
        self.assertEqual(types.count("image_generation.progress"), 2, types)
        self.assertEqual(types[-1], "image_generation.completed", types)
        self.assertIsNotNone(completed)
        self.assertEqual(completed.size, "32x32")
        self.assertEqual(completed.output_format, "png")
        self.assertImage(base64.b64decode(completed.b64_json), 32, 32)

    def test_edit_stream(self):
        with open(self.ref_a, "rb") as f:
            stream = self.client.images.edit(image=f, prompt="edit while streaming", size="32x32", stream=True,
                                             extra_body={"seed": 2, "num_inference_steps": 1})
            types = [event.type for event in stream]
        self.assertIn("image_edit.progress", types)
        self.assertEqual(types[-1], "image_edit.completed", types)

    def test_wrong_key_is_authentication_error(self):
        import openai
        bad = OpenAI(base_url=f"{server.base_url}/v1", api_key="wrong", max_retries=0)
        with self.assertRaises(openai.AuthenticationError):
            bad.images.generate(prompt="x", size="32x32")

    def test_sdk_error_is_bad_request(self):
        import openai
        with self.assertRaises(openai.BadRequestError) as ctx:
            self.client.images.generate(prompt="x", n=11, size="32x32")
        self.assertEqual(ctx.exception.body.get("param") if isinstance(ctx.exception.body, dict) else None, "n")

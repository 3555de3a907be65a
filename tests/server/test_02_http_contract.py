"""Every route, field and error of the HTTP contract over plain HTTP (docs/SERVER.md), against one server started
with small limits so that each limit can be hit cheaply."""
import base64
import json
import socket
import time

import common

KEY = "sk-flux2-contract"
server = None


def setUpModule():
    global server
    server = common.Server("contract", "--max-body-mb", "1", "--max-queue", "1", "--max-pixels", "16384",
                           "--max-images", "2", "--url-max", "2", "--model-id", "flux2-test", api_key=KEY).start()


def tearDownModule():
    if server:
        server.stop()


def post(path, body, **kw):
    return server.request("POST", path, body, **kw)


class HealthAndPageTest(common.ServerTestCase):
    def test_health_needs_no_key(self):
        r = server.request("GET", "/health", auth=False)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"status": "ok"})
        self.assertEqual(server.request("GET", "/health/live", auth=False).status, 200)

    def test_page_needs_no_key(self):
        r = server.request("GET", "/", auth=False)
        self.assertEqual(r.status, 200)
        self.assertIn("text/html", r.headers.get("Content-Type", ""))
        page = r.body.decode()
        for element_id in ("prompt", "width", "height", "steps", "seed", "images", "api-key", "generate",
                           "progress", "status", "result", "download"):
            self.assertIn(f'id="{element_id}"', page)
        self.assertNotIn("http://", page.replace("http://www.w3.org", ""), "the page must load nothing external")
        self.assertNotIn("https://", page)


class ModelsTest(common.ServerTestCase):
    def test_list(self):
        r = server.request("GET", "/v1/models")
        self.assertEqual(r.status, 200)
        body = r.json()
        self.assertEqual(body["object"], "list")
        self.assertEqual(len(body["data"]), 1)
        m = body["data"][0]
        self.assertEqual(m["id"], "flux2-test")
        self.assertEqual(m["object"], "model")
        self.assertIsInstance(m["created"], int)
        self.assertEqual(m["owned_by"], "flux2.cpp")

    def test_one(self):
        r = server.request("GET", "/v1/models/flux2-test")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["id"], "flux2-test")

    def test_unknown_model_404(self):
        r = server.request("GET", "/v1/models/nope")
        self.assertError(r, 404, "not_found_error", "model_not_found")


class AuthTest(common.ServerTestCase):
    def test_missing_key(self):
        for method, path, body in (("GET", "/v1/models", None), ("GET", "/metrics", None),
                                   ("POST", "/v1/images/generations", {"prompt": "x"})):
            with self.subTest(path=path):
                r = server.request(method, path, body, auth=False)
                self.assertError(r, 401, "authentication_error", "invalid_api_key")

    def test_wrong_key(self):
        for auth in ("Bearer wrong", f"Bearer {KEY}x", KEY, f"Basic {KEY}", "Bearer "):
            with self.subTest(auth=auth):
                r = server.request("POST", "/v1/images/generations", {"prompt": "x", **common.TINY},
                                   headers={"Authorization": auth}, auth=False)
                self.assertError(r, 401, "authentication_error", "invalid_api_key")


class RoutingTest(common.ServerTestCase):
    def test_unknown_route_404(self):
        for path in ("/v1/nope", "/v2/images/generations", "/v1/images/generations/extra"):
            with self.subTest(path=path):
                self.assertError(server.request("GET", path), 404, "not_found_error", "not_found")

    def test_wrong_method_405(self):
        for method, path in (("GET", "/v1/images/generations"), ("GET", "/v1/images/edits"),
                             ("PUT", "/v1/images/generations"), ("DELETE", "/v1/models")):
            with self.subTest(method=method, path=path):
                self.assertError(server.request(method, path), 405, "invalid_request_error", "method_not_allowed")

    def test_unknown_image_content_404(self):
        self.assertError(server.request("GET", "/v1/images/nope/content"), 404, "not_found_error")


class BadRequestTest(common.ServerTestCase):
    def test_malformed_json(self):
        for body in ('{"prompt": "a cat"', "not json", '{"prompt": "x",}', "", "[1, 2]"):
            with self.subTest(body=body):
                r = post("/v1/images/generations", body, headers={"Content-Type": "application/json"})
                self.assertError(r, 400, "invalid_request_error")
                if body != "[1, 2]":
                    self.assertEqual(r.json()["error"]["code"], "invalid_json")

    def test_missing_prompt(self):
        r = post("/v1/images/generations", {"size": "32x32"})
        self.assertError(r, 400, "invalid_request_error", "missing_field", "prompt")

    def test_wrong_types(self):
        cases = [("n", "x"), ("prompt", 5), ("size", 64), ("seed", "abc"), ("stream", "yes"), ("width", [64]),
                 ("num_inference_steps", 1.5), ("guidance_scale", "high"), ("response_format", 1),
                 ("output_compression", "max"), ("negative_prompt", ["a"]), ("seed", [1, "2"])]
        for field, value in cases:
            with self.subTest(field=field, value=value):
                body = {"prompt": "x", **common.TINY, field: value}
                r = post("/v1/images/generations", body)
                err = self.assertError(r, 400, "invalid_request_error", param=(field, f"{field}[1]"))
                self.assertIn(err["code"], ("invalid_type", "invalid_value"))
        r = post("/v1/images/generations", {"prompt": "x", "n": "x"})
        self.assertError(r, 400, "invalid_request_error", "invalid_type", "n")

    def test_invalid_values(self):
        cases = [("n", 0), ("n", 11), ("response_format", "gif"), ("output_format", "gif"),
                 ("output_compression", 101), ("output_compression", -1), ("num_inference_steps", 0),
                 ("num_inference_steps", 1001), ("seed", [1, 2, 3]), ("size", "big"), ("size", "64")]
        for field, value in cases:
            with self.subTest(field=field, value=value):
                body = {"prompt": "x", **common.TINY, field: value}
                r = post("/v1/images/generations", body)
                self.assertIn(r.status, (400, 422), r)
                self.assertError(r, r.status, "invalid_request_error", param=field)

    def test_size_not_multiple_of_16_422(self):
        r = post("/v1/images/generations", {"prompt": "x", "size": "100x96", "num_inference_steps": 1})
        self.assertError(r, 422, "invalid_request_error", "invalid_size", "size")
        r = post("/v1/images/generations", {"prompt": "x", "width": 100, "height": 64, "num_inference_steps": 1})
        self.assertError(r, 422, "invalid_request_error", "invalid_size", ("width", "size"))
        r = post("/v1/images/generations", {"prompt": "x", "width": 64, "height": 72, "num_inference_steps": 1})
        self.assertError(r, 422, "invalid_request_error", "invalid_size", ("height", "size"))

    def test_size_over_max_pixels_422(self):
        # --max-pixels 16384 = 128x128, the demo model's default size
        for body in ({"size": "144x128"}, {"width": 1024, "height": 1024}, {"size": "16x32768"},
                     {"size": "4096x4096"}):
            with self.subTest(body=body):
                r = post("/v1/images/generations", {"prompt": "x", "num_inference_steps": 1, **body})
                self.assertError(r, 422, "invalid_request_error", "invalid_size")
        # exactly at the bound: "auto" is the demo model's 128x128
        r = post("/v1/images/generations", {"prompt": "x", "size": "auto", "num_inference_steps": 1})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["size"], "128x128")

    def test_body_over_max_body_mb_413(self):
        body = json.dumps({"prompt": "x" * (1536 * 1024), **common.TINY}).encode()
        head = common.http_bytes("POST", "/v1/images/generations", b"",
                                 {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"},
                                 content_length=len(body))
        with common.raw_connect(server.port) as s:
            s.sendall(head + body[:65536])  # the server may answer from Content-Length alone
            s.settimeout(3)
            try:
                first = s.recv(65536, socket.MSG_PEEK)
            except OSError:
                first = b""
            if not first:
                try:
                    s.sendall(body[65536:])
                except (BrokenPipeError, ConnectionResetError):
                    pass
            status, headers, data = common.read_response(s)
        self.assertEqual(status, 413, data[:300])
        err = json.loads(data)["error"]
        self.assertEqual(err["type"], "invalid_request_error")
        self.assertEqual(err["code"], "payload_too_large")
        self.assertEqual(server.request("GET", "/health").status, 200)

    def test_edit_errors(self):
        png = common.png_bytes(64, 64)
        url = common.data_url(png)
        cases = [
            ({"prompt": "x", "images": [{"image_url": "http://127.0.0.1:9/a.png"}]}, "images[0].image_url"),
            ({"prompt": "x", "images": [{"image_url": url}, {"image_url": "data:image/png;base64,@@@"}]},
             "images[1].image_url"),
            ({"prompt": "x", "images": [{"image_url": "data:image/png;base64," +
                                         base64.b64encode(b"not an image").decode()}]}, "images[0].image_url"),
            ({"prompt": "x", "images": [{"image_url": url}] * 3}, None),  # over --max-images 2
            ({"prompt": "x", "images": []}, None),
            ({"images": [{"image_url": url}]}, "prompt"),
        ]
        for body, param in cases:
            with self.subTest(body=str(body)[:120]):
                r = post("/v1/images/edits", dict(body, num_inference_steps=1))
                self.assertError(r, 400, "invalid_request_error", param=param)

    def test_multipart_edit_errors(self):
        png = common.png_bytes(64, 64)
        cases = [
            ({"prompt": "x"}, [("image", "a.txt", b"hello", "text/plain")]),
            ({"prompt": "x"}, [("image[]", "a.png", png, "image/png")] * 3),
            ({"prompt": "x"}, []),
            ({}, [("image", "a.png", png, "image/png")]),
            ({"prompt": "x", "n": "many"}, [("image", "a.png", png, "image/png")]),
        ]
        for fields, files in cases:
            with self.subTest(fields=fields, files=len(files)):
                body, ctype = common.multipart(dict(fields, num_inference_steps="1"), files)
                r = post("/v1/images/edits", body, headers={"Content-Type": ctype})
                self.assertError(r, 400, "invalid_request_error")


class ImagesTest(common.ServerTestCase):
    def test_response_shape_and_headers(self):
        r1 = server.generate(prompt="shape check", seed=3)
        self.assertEqual(r1.status, 200, r1)
        b = r1.json()
        self.assertTrue(isinstance(b["id"], str) and b["id"])
        self.assertIsInstance(b["created"], int)
        self.assertLess(abs(b["created"] - time.time()), 600)
        self.assertEqual(b["output_format"], "png")
        self.assertEqual(b["size"], "32x32")
        self.assertEqual(b["data"][0]["revised_prompt"], "shape check")
        self.assertImage(base64.b64decode(b["data"][0]["b64_json"]), 32, 32)
        usage = b["usage"]
        for k in ("input_tokens", "output_tokens", "total_tokens"):
            self.assertIsInstance(usage[k], int)
        self.assertEqual(set(usage["input_tokens_details"]), {"text_tokens", "image_tokens"})
        self.assertIsInstance(b["inference_time_s"], (int, float))
        self.assertIsInstance(b["peak_memory_mb"], (int, float))
        timing = common.server_timing(r1.headers)
        self.assertEqual(set(timing) & {"queue", "text_encoder", "denoise", "decode", "total"},
                         {"queue", "text_encoder", "denoise", "decode", "total"}, r1.headers.get("Server-Timing"))
        self.assertTrue(r1.headers.get("X-Request-Id"))
        r2 = server.generate(prompt="shape check", seed=3)
        self.assertNotEqual(r2.json()["id"], b["id"])
        self.assertNotEqual(r2.headers.get("X-Request-Id"), r1.headers.get("X-Request-Id"))
        self.assertEqual(r2.json()["data"][0]["b64_json"], b["data"][0]["b64_json"], "same seed, other pixels")

    def test_unknown_keys_ignored(self):
        r = server.generate(quality="high", style="vivid", background="auto", moderation="low", foo={"bar": [1]},
                            model="flux2-test", user="someone")
        self.assertEqual(r.status, 200, r)

    def test_output_formats(self):
        for fmt, check in (("png", lambda d: d.startswith(common.PNG_MAGIC)),
                           ("jpeg", lambda d: d[:3] == b"\xff\xd8\xff"),
                           ("webp", lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP")):
            with self.subTest(fmt=fmt):
                r = server.generate(output_format=fmt, output_compression=80)
                self.assertEqual(r.status, 200, r)
                b = r.json()
                self.assertEqual(b["output_format"], fmt)
                data = base64.b64decode(b["data"][0]["b64_json"])
                self.assertTrue(check(data), data[:16])
                self.assertEqual(common.decode_image(data).size, (32, 32))

    def test_default_steps_and_stream_events(self):
        conn = server.connection()
        body = json.dumps({"prompt": "stream", "size": "32x32", "stream": True, "seed": 1})
        conn.request("POST", "/v1/images/generations", body,
                     {"Content-Type": "application/json", **server.auth_headers()})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        self.assertIn("text/event-stream", resp.headers.get("Content-Type", ""))
        events = list(common.iter_sse(resp))
        conn.close()
        progress = [d for e, d in events if e == "image_generation.progress"]
        completed = [d for e, d in events if e == "image_generation.completed"]
        self.assertEqual(len(progress), 4, "the demo model's default is 4 steps")
        for i, p in enumerate(progress):
            self.assertEqual(p["type"], "image_generation.progress")
            self.assertEqual(p["total"], 4)
            self.assertEqual(p["step"], i + 1)
            self.assertIsInstance(p["elapsed_s"], (int, float))
            self.assertTrue(p["id"])
        self.assertEqual(len(completed), 1)
        c = completed[0]
        self.assertEqual(events[-1][0], "image_generation.completed")
        self.assertEqual(c["type"], "image_generation.completed")
        self.assertEqual(c["index"], 0)
        self.assertEqual(c["size"], "32x32")
        self.assertEqual(c["output_format"], "png")
        self.assertEqual(c["quality"], "auto")
        self.assertEqual(c["background"], "opaque")
        self.assertIsInstance(c["created_at"], int)
        self.assertIn("total_tokens", c["usage"])
        self.assertImage(base64.b64decode(c["b64_json"]), 32, 32)

    def test_stream_n2_gives_two_completed(self):
        conn = server.connection()
        body = json.dumps({"prompt": "two", "n": 2, "stream": True, **common.TINY})
        conn.request("POST", "/v1/images/generations", body,
                     {"Content-Type": "application/json", **server.auth_headers()})
        resp = conn.getresponse()
        events = list(common.iter_sse(resp))
        conn.close()
        completed = [d for e, d in events if e == "image_generation.completed"]
        self.assertEqual(sorted(c["index"] for c in completed), [0, 1])

    def test_edit_json_data_url(self):
        png = common.png_bytes(80, 64)
        r = post("/v1/images/edits", {"prompt": "edit", "images": [{"image_url": common.data_url(png)}],
                                      "num_inference_steps": 1})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["size"], "80x64")
        jpg = common.jpeg_bytes(64, 64)
        r = post("/v1/images/edits", {"prompt": "edit", "size": "32x32", "num_inference_steps": 1,
                                      "images": [{"image_url": common.data_url(png)},
                                                 {"image_url": common.data_url(jpg, "image/jpeg")}]})
        self.assertEqual(r.status, 200, r)

    def test_edit_multipart_single_image_field(self):
        body, ctype = common.multipart({"prompt": "edit", "num_inference_steps": "1", "size": "32x32", "seed": "5",
                                        "output_format": "jpeg"},
                                       [("image", "a.png", common.png_bytes(64, 80), "image/png")])
        r = post("/v1/images/edits", body, headers={"Content-Type": ctype})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["output_format"], "jpeg")

    def test_edit_multipart_stream(self):
        body, ctype = common.multipart({"prompt": "edit", "num_inference_steps": "2", "size": "32x32",
                                        "stream": "true"},
                                       [("image[]", "a.png", common.png_bytes(64, 64), "image/png"),
                                        ("image[]", "b.jpg", common.jpeg_bytes(64, 64), "image/jpeg")])
        conn = server.connection()
        conn.request("POST", "/v1/images/edits", body, {"Content-Type": ctype, **server.auth_headers()})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        events = [e for e, _ in common.iter_sse(resp)]
        conn.close()
        self.assertEqual(events, ["image_edit.progress", "image_edit.progress", "image_edit.completed"])

    def test_url_response_and_eviction(self):
        # --url-max 2: a third stored image evicts the first
        urls = []
        for seed in range(3):
            r = server.generate(response_format="url", seed=seed)
            self.assertEqual(r.status, 200, r)
            urls.append(r.json()["data"][0]["url"])
        self.assertEqual(len(set(urls)), 3)
        paths = [u.split(f"127.0.0.1:{server.port}", 1)[1] for u in urls]
        first = server.request("GET", paths[0])
        self.assertError(first, 404, "not_found_error")
        last = server.request("GET", paths[2])
        self.assertEqual(last.status, 200)
        self.assertTrue(last.body.startswith(common.PNG_MAGIC))
        self.assertIn("image/png", last.headers.get("Content-Type", ""))
        self.assertEqual(server.request("GET", paths[2], auth=False).status, 401)


class UrlTtlTest(common.ServerTestCase):
    """--url-ttl: a url image can be fetched until it expires, then 404."""

    def test_url_expires(self):
        ttl_server = common.Server("url-ttl", "--url-ttl", "1").start()
        try:
            r = ttl_server.generate(response_format="url")
            self.assertEqual(r.status, 200, r)
            path = r.json()["data"][0]["url"].split(f"127.0.0.1:{ttl_server.port}", 1)[1]
            self.assertEqual(ttl_server.request("GET", path).status, 200)
            time.sleep(2.5)
            self.assertError(ttl_server.request("GET", path), 404, "not_found_error")
        finally:
            ttl_server.stop()


class QueueFullTest(common.ServerTestCase):
    def test_429_when_queue_full(self):
        slow = server.slow_fields(6, size=128)  # --max-pixels 16384
        before_cancelled = server.metric("flux2_jobs_cancelled_total")
        # A runs (streaming, so that we see it start) ...
        conn_a = server.connection()
        conn_a.request("POST", "/v1/images/generations",
                       json.dumps({"prompt": "a", "stream": True, **slow}),
                       {"Content-Type": "application/json", **server.auth_headers()})
        resp_a = conn_a.getresponse()
        self.assertEqual(resp_a.status, 200)
        first = next(common.iter_sse(resp_a))
        self.assertEqual(first[0], "image_generation.progress")
        # ... B waits (--max-queue 1) ...
        sock_b = common.raw_connect(server.port)
        sock_b.sendall(common.http_bytes("POST", "/v1/images/generations",
                                         json.dumps({"prompt": "b", **slow}),
                                         {"Content-Type": "application/json", **server.auth_headers()}))
        server.wait_metric("flux2_queue_depth", lambda v: v == 1, timeout=10)
        # ... and C finds the queue full.
        t = time.monotonic()
        r = server.generate(prompt="c")
        self.assertLess(time.monotonic() - t, 5, "a 429 must come at once")
        self.assertError(r, 429, "rate_limit_error", "queue_full")
        retry = r.headers.get("Retry-After")
        self.assertIsNotNone(retry, "429 without Retry-After")
        self.assertTrue(retry.isdigit() and int(retry) >= 1, retry)
        # Both clients leave: their jobs are cancelled and the server is free again.
        sock_b.close()
        resp_a.close()  # the response holds the socket: close both
        conn_a.close()
        server.wait_metric("flux2_queue_depth", lambda v: v == 0, timeout=20)
        server.wait_metric("flux2_jobs_running", lambda v: v == 0, timeout=20)
        server.wait_metric("flux2_jobs_cancelled_total", lambda v: v >= before_cancelled + 2, timeout=20)
        self.assertEqual(server.generate().status, 200)


class MetricsTest(common.ServerTestCase):
    def test_prometheus_text(self):
        self.assertEqual(server.generate().status, 200)
        r = server.request("GET", "/metrics")
        self.assertEqual(r.status, 200)
        self.assertIn("text/plain", r.headers.get("Content-Type", ""))
        text = r.body.decode()
        samples = common.parse_metrics(text)  # must parse
        names = {n for n, _, _ in samples}
        for name in ("flux2_requests_total", "flux2_queue_depth", "flux2_jobs_running", "flux2_jobs_cancelled_total",
                     "flux2_request_duration_seconds_bucket", "flux2_request_duration_seconds_sum",
                     "flux2_request_duration_seconds_count", "flux2_step_duration_seconds_bucket",
                     "flux2_device_memory_bytes", "flux2_images_generated_total"):
            self.assertIn(name, names)
        self.assertIn("# TYPE flux2_request_duration_seconds histogram", text)
        self.assertIn("# TYPE flux2_requests_total counter", text)
        ok = [l for n, l, v in samples if n == "flux2_requests_total" and l.get("status") == "200" and v > 0]
        self.assertTrue(ok, "no flux2_requests_total{status=\"200\"} sample")
        self.assertIn("endpoint", ok[0])
        buckets = [(l["le"], v) for n, l, v in samples if n == "flux2_step_duration_seconds_bucket"]
        self.assertIn("+Inf", [le for le, _ in buckets])
        values = [v for _, v in buckets]
        self.assertEqual(values, sorted(values), "histogram buckets must be cumulative")
        self.assertGreater(common.metric_sum(samples, "flux2_images_generated_total"), 0)


if __name__ == "__main__":
    import unittest
    unittest.main()

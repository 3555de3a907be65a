"""Malformed requests: over a thousand seeded, generated bodies and broken HTTP exchanges. None may get a 5xx or
take the server down; afterwards it still answers and its memory has not grown past a bound.

FLUX2_FUZZ_SEED and FLUX2_FUZZ_COUNT change the seed (default 20261130) and the number of cases (default 1200);
a failure names the seed and the case so that it can be replayed."""
import base64
import json
import os
import random
import socket
import struct
import sys
import time
import zlib

import common

SEED = int(os.environ.get("FLUX2_FUZZ_SEED", "20261130"))
COUNT = int(os.environ.get("FLUX2_FUZZ_COUNT", "1200"))
RSS_BOUND_MB = 150
CASE_TIMEOUT_S = 20  # an answer to a bad request comes in milliseconds; a tiny valid one in well under a second
RUN_LIMIT_S = 300  # the whole generated run
GEN = "/v1/images/generations"
EDIT = "/v1/images/edits"
server = None


def setUpModule():
    global server
    server = common.Server("malformed", "--max-body-mb", "2", "--max-images", "2").start()


def tearDownModule():
    if server:
        server.stop()


# -- building blocks ---------------------------------------------------------------------------------------------
FIELDS = ["prompt", "n", "size", "response_format", "output_format", "output_compression", "stream", "width",
          "height", "num_inference_steps", "guidance_scale", "true_cfg_scale", "negative_prompt", "seed",
          "max_sequence_length", "user", "model", "images"]
WRONG_VALUES = [None, True, False, [], {}, "str", -1, 0, 1.5, [1], {"a": 1}, "32x32x32", "\u0000", "\U0001f4a5",
                "", " ", [[]], [None], {"image_url": 1}, -0.0, "1", "true"]
HUGE_TOKENS = ["1e308", "-1e308", "1e999", "-1e999", "9223372036854775808", "18446744073709551616",
               "-9223372036854775809", "9223372036854775807", "-9223372036854775808", "4294967296", "2147483648",
               "-2147483649", "1e-320", "-0", "123456789012345678901234567890", "0.0000001", "1E400", "2e9"]
BAD_SIZES = ["-32x32", "32x-32", "0x0", "-0x-0", "x", "32x", "x32", "32X32", " 32x32", "32x32 ", "0032x0032",
             "32.0x32", "+32x+32", "1e2x32", "99999999999999999999x32", "32x32x32", "32*32", "", "auto ", "AUTO",
             "-16x-16", "16x0", "0x16", "4294967328x32", "32x4294967328", "2147483648x2147483648", "\u0000",
             "32x32\u0000", "٣٢x٣٢", "-9223372036854775808x32"]
BAD_DATA_URLS = ["data:image/png;base64,@@@@", "data:image/png;base64,", "data:;base64,AAAA", "data:image/png,raw",
                 "data:image/png;base64,iVBORw0KGgo=", "data:text/plain;base64,aGVsbG8=", "data:image/png;base64,====",
                 "data:image/png;base64,QUJD\nREVG", "file:///etc/passwd", "ftp://127.0.0.1:9/x.png",
                 "http://127.0.0.1:9/x.png", "https://127.0.0.1:9/x.png", "", "data:", "javascript:alert(1)",
                 "data:image/png;base64,A", "data:image/png;base64,AA=", "data:image/jpeg;base64,/9j/",
                 "data:image/png;base64," + "A" * 5000 + "%", "data:image/png;charset=utf-8;base64,AAAA",
                 "DATA:IMAGE/PNG;BASE64,AAAA", "data:image/png;base64,\u00e9\u00e9\u00e9\u00e9"]


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_with_header(width, height, idat=b""):
    """A PNG whose IHDR claims width x height (a decompression bomb when large), with the given IDAT bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (common.PNG_MAGIC + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat or zlib.compress(b"\0" * 64))
            + png_chunk(b"IEND", b""))


def jpeg_with_size(width, height):
    """A JPEG start whose SOF0 claims width x height, then garbage."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + sof + b"\xff\xd9"


class Fuzzer:
    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.png = common.png_bytes(64, 64, seed=3)
        self.jpg = common.jpeg_bytes(64, 64, seed=4)
        self.tiny_png = common.png_bytes(1, 1)

    def rbytes(self, n):
        return bytes(self.rng.getrandbits(8) for _ in range(n))

    def base(self):
        body = {"prompt": "fuzz " + str(self.rng.randrange(1000)), "size": "32x32", "num_inference_steps": 1,
                "seed": self.rng.randrange(1 << 31)}
        if self.rng.random() < 0.2:
            body["output_format"] = self.rng.choice(["png", "jpeg", "webp"])
        return body

    def non_image(self):
        r = self.rng
        choice = r.randrange(12)
        if choice == 0:
            return self.rbytes(r.randrange(0, 2048))
        if choice == 1:
            return self.png[:r.randrange(1, len(self.png))]  # truncated PNG
        if choice == 2:
            bad = bytearray(self.png)
            for _ in range(r.randrange(1, 20)):
                bad[r.randrange(8, len(bad))] = r.getrandbits(8)
            return bytes(bad)  # corrupted PNG
        if choice == 3:
            return png_with_header(r.choice([65535, 100000, 1 << 30, 0x7FFFFFFF]), r.choice([65535, 100000, 1]))
        if choice == 4:
            return png_with_header(0, 0)
        if choice == 5:
            return self.jpg[:r.randrange(1, len(self.jpg))]  # truncated JPEG
        if choice == 6:
            return jpeg_with_size(r.choice([65500, 30000, 0]), r.choice([65500, 1, 0]))
        if choice == 7:
            return b"GIF89a" + self.rbytes(64)
        if choice == 8:
            return b"RIFF\x00\x00\x00\x00WEBPVP8 " + self.rbytes(32)
        if choice == 9:
            return b"<svg xmlns='http://www.w3.org/2000/svg'/>"
        if choice == 10:
            bad = bytearray(self.jpg)
            for _ in range(r.randrange(1, 20)):
                bad[r.randrange(2, len(bad))] = r.getrandbits(8)
            return bytes(bad)
        return self.tiny_png  # a real 1x1 image: fine with an explicit size, else an invalid size

    def request(self, path, body, ctype="application/json", extra_headers=None, content_length=None):
        headers = {"Content-Type": ctype} if ctype else {}
        headers.update(extra_headers or {})
        return common.http_bytes("POST", path, body, headers, content_length)

    # Each case: (kind, bytes to send, how): how = "full" (a complete HTTP request: send, read the answer, which
    # must come), "half" (broken HTTP: send, shut our sending side so that a server waiting for more bytes sees the
    # end, read what comes; a close without an answer is fine), "close" (send, close at once: the server must cope
    # with a client that went away).
    def case(self):
        r = self.rng
        kind = r.choices(
            ["truncated", "wrong_type", "huge_number", "bad_size", "bad_data_url", "non_image_json",
             "non_image_multipart", "random_body", "deep_nesting", "huge_header", "closed_mid_body", "broken_http",
             "bad_path", "bad_multipart", "bad_strings", "abandoned"],
            weights=[10, 14, 10, 8, 8, 8, 6, 8, 4, 3, 4, 5, 4, 5, 4, 1])[0]
        return kind, *getattr(self, "make_" + kind)()

    def make_truncated(self):
        body = self.base()
        if self.rng.random() < 0.3:
            body["images"] = [{"image_url": common.data_url(self.png)}]
        text = json.dumps(body)
        cut = self.rng.randrange(0, len(text))
        return self.request(self.rng.choice([GEN, EDIT]), text[:cut]), "full"

    def make_wrong_type(self):
        body = self.base()
        for _ in range(self.rng.randrange(1, 4)):
            body[self.rng.choice(FIELDS)] = self.rng.choice(WRONG_VALUES)
        if self.rng.random() < 0.15:
            body = self.rng.choice([[body], "body", 7, None, True])
        return self.request(self.rng.choice([GEN, EDIT]), json.dumps(body)), "full"

    def make_huge_number(self):
        field = self.rng.choice(["n", "width", "height", "num_inference_steps", "seed", "output_compression",
                                 "guidance_scale", "max_sequence_length", "true_cfg_scale"])
        token = self.rng.choice(HUGE_TOKENS)
        body = self.base()
        if field in ("width", "height"):
            body.pop("size")
            body["width" if field == "height" else "height"] = 32
        if field == "seed" and self.rng.random() < 0.5:
            text = json.dumps(body)[:-1] + f', "seed": [{token}]' + "}"
        else:
            body.pop(field, None)
            text = json.dumps(body)[:-1] + f', "{field}": {token}' + "}"
        return self.request(GEN, text), "full"

    def make_bad_size(self):
        body = self.base()
        if self.rng.random() < 0.5:
            body["size"] = self.rng.choice(BAD_SIZES)
        else:
            body.pop("size")
            body["width"] = self.rng.choice([-32, 0, -16, 15, 17, 33, 1, -1, 65536, 1 << 31, -(1 << 31), 16])
            body["height"] = self.rng.choice([-32, 0, 32, -16, 7, 1 << 20])
        return self.request(self.rng.choice([GEN, EDIT]), json.dumps(body)), "full"

    def make_bad_data_url(self):
        body = self.base()
        r = self.rng
        shape = r.randrange(6)
        url = r.choice(BAD_DATA_URLS)
        if shape == 0:
            body["images"] = [{"image_url": url}]
        elif shape == 1:
            body["images"] = [{"image_url": common.data_url(self.png)}, {"image_url": url}]
        elif shape == 2:
            body["images"] = [url]
        elif shape == 3:
            body["images"] = {"image_url": url}
        elif shape == 4:
            body["images"] = [{"image_url": {"url": url}}]
        else:
            body["images"] = [{"image_url": common.data_url(self.png)}] * r.randrange(3, 6)  # over --max-images
        return self.request(EDIT, json.dumps(body)), "full"

    def make_non_image_json(self):
        body = self.base()
        if self.rng.random() < 0.4:
            body.pop("size")
        mime = self.rng.choice(["image/png", "image/jpeg", "image/gif", "application/octet-stream"])
        body["images"] = [{"image_url": common.data_url(self.non_image(), mime)}]
        return self.request(EDIT, json.dumps(body)), "full"

    def make_non_image_multipart(self):
        fields = {k: str(v) for k, v in self.base().items()}
        if self.rng.random() < 0.4:
            fields.pop("size")
        field = self.rng.choice(["image", "image[]", "images", "mask"])
        files = [(field, self.rng.choice(["a.png", "a.jpg", "", "../../x", "a" * 300]), self.non_image(),
                  self.rng.choice(["image/png", "image/jpeg", "text/plain", ""]))]
        body, ctype = common.multipart(fields, files)
        return self.request(EDIT, body, ctype), "full"

    def make_random_body(self):
        r = self.rng
        ctype = r.choice(["application/json", "multipart/form-data; boundary=xyz", "multipart/form-data",
                          "text/plain", None, "application/x-www-form-urlencoded", "application/json; charset=utf-16"])
        return self.request(r.choice([GEN, EDIT]), self.rbytes(r.randrange(0, 4096)), ctype), "full"

    def make_deep_nesting(self):
        r = self.rng
        depth = r.choice([100, 1000, 10000, 100000, 400000])
        shape = r.randrange(4)
        if shape == 0:
            text = "[" * depth + "]" * depth
        elif shape == 1:
            text = '{"a":' * depth + "1" + "}" * depth
        elif shape == 2:
            text = '{"prompt": "x", "size": "32x32", "num_inference_steps": 1, "user": ' + "[" * depth + "]" * depth + "}"
        else:
            text = "[" * depth  # unclosed
        return self.request(r.choice([GEN, EDIT]), text), "full"

    def make_huge_header(self):
        r = self.rng
        body = json.dumps(self.base())
        shape = r.randrange(4)
        if shape == 0:
            headers = {"X-Big": "a" * r.choice([8193, 9000, 16384, 65536, 1 << 20])}
        elif shape == 1:
            headers = {f"X-H{i}": "v" * 64 for i in range(r.choice([101, 200, 1000]))}
        elif shape == 2:
            headers = {"Authorization": "Bearer " + "k" * r.choice([9000, 100000])}
        else:
            return common.http_bytes("GET", "/" + "p" * r.choice([9000, 70000]), b""), "half"
        return self.request(GEN, body, extra_headers=headers), "half"

    def make_closed_mid_body(self):
        body = json.dumps(self.base()).encode()
        if self.rng.random() < 0.5:
            b, ctype = common.multipart({"prompt": "x"}, [("image", "a.png", self.png, "image/png")])
            data = self.request(EDIT, b, ctype)
        else:
            data = self.request(GEN, body)
        cut = self.rng.randrange(1, len(data))
        return data[:cut], "close"

    def make_broken_http(self):
        r = self.rng
        body = json.dumps(self.base())
        options = [
            b"GARBAGE\r\n\r\n",
            b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
            b"GET /health\r\n\r\n",
            b"\r\n\r\n\r\n",
            b"POST " + GEN.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
            b"POST " + GEN.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
            b"POST " + GEN.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n{}",
            b"POST " + GEN.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n{}",
            b"POST " + GEN.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
            b"POST " + GEN.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"ffffffffffffffff\r\n{}\r\n0\r\n\r\n",
            b"POST " + GEN.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
            b"2\r\n{}\r\n0\r\n\r\n",
            b"POST " + GEN.encode() + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            b"POST " + GEN.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Encoding: gzip\r\nContent-Length: 10\r\n\r\n" + self.rbytes(10),
            b"POST " + GEN.encode() + b" HTTP/1.1\nHost: x\nContent-Length: 2\n\n{}",
            b"POST http://127.0.0.1" + GEN.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
            b"POST " + GEN.encode() + b" HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
            b"GET /health HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n",
            b"GET /health HTTP/1.1\r\nHost: x\r\n bad-continuation\r\n\r\n",
            b"GET /health HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
            b"BREW /coffee HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST " + GEN.encode() + b" HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body.encode(),
            self.rbytes(r.randrange(1, 512)),
        ]
        return r.choice(options), "half"

    def make_bad_path(self):
        r = self.rng
        path = r.choice(["/v1/images/" + self.rbytes(8).hex() + "/content", "/v1/images/../../etc/passwd/content",
                         "/v1/images/%00/content", "/v1/images//content", "/v1/models/" + "m" * 5000,
                         "/v1/models/%2e%2e%2f", "/v1/images/generations%00", "/%", "/v1/%zz", "/v1/images/%ff/content",
                         "/v1/models/\u00e9".encode("utf-8").decode("latin-1"), "/?" + "a=1&" * 500, "//", "/.."])
        method = r.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"])
        return common.http_bytes(method, path, b"{}" if method in ("POST", "PUT", "PATCH") else b""), "full"

    def make_bad_multipart(self):
        r = self.rng
        b, ctype = common.multipart({"prompt": "x", "size": "32x32", "num_inference_steps": "1"},
                                    [("image", "a.png", self.png, "image/png")])
        shape = r.randrange(9)
        if shape == 0:
            b = b[:b.rfind(b"--")]  # no closing boundary
        elif shape == 1:
            ctype = "multipart/form-data; boundary=other"
        elif shape == 2:
            ctype = "multipart/form-data"
        elif shape == 3:
            b = b.replace(b"Content-Disposition", b"Content-Dispositio")
        elif shape == 4:
            b = b.replace(b'name="prompt"', b'name="prompt"; filename="' + b"f" * 10000 + b'"')
        elif shape == 5:
            b = b[:r.randrange(1, len(b))]
        elif shape == 6:
            b, ctype = common.multipart({"prompt": "x", "size": "32x32", "prompt ": "y", "num_inference_steps": "1"},
                                        [("image", "a.png", self.png, "image/png")] + [("image", "b", b"", "")])
        elif shape == 7:
            b = b.replace(b"\r\n", b"\n")
        else:
            b, ctype = common.multipart({"prompt": "\udcff".encode("utf-8", "surrogateescape").decode("latin-1"),
                                         "n": "1e999", "seed": "-", "stream": "maybe", "width": "32", "height": "x"},
                                        [("image[]", "a.png", self.png, "image/png")])
        return self.request(EDIT, b, ctype), "full"

    def make_bad_strings(self):
        r = self.rng
        body = json.dumps(self.base())
        shape = r.randrange(6)
        if shape == 0:
            data = body.encode().replace(b"fuzz", b"fu\xff\xfez")  # invalid UTF-8 inside a string
        elif shape == 1:
            data = body.replace("fuzz", "\\ud800 lone").encode()  # lone surrogate escape
        elif shape == 2:
            data = body.replace("fuzz", "a\\u0000b").encode()  # NUL in the prompt
        elif shape == 3:
            data = json.dumps(dict(self.base(), prompt="x" * (70 * 1024))).encode()  # over the prompt bound
        elif shape == 4:
            data = json.dumps(dict(self.base(), negative_prompt="\U0001f600" * 20000)).encode()
        else:
            data = json.dumps(dict(self.base(), prompt="<|im_start|>system\n" * 50 + "{{x}} %s %n")).encode()
        return self.request(GEN, data), "full"

    def make_abandoned(self):
        # a valid request whose client leaves at once: the server must cancel it and go on
        return self.request(GEN, json.dumps(self.base())), "close"


class MalformedRequestsTest(common.ServerTestCase):
    @classmethod
    def setUpClass(cls):
        # warm-up: every path that allocates once (text encoder, decoder, encoders for each format, edits)
        for fmt in ("png", "jpeg", "webp"):
            assert server.generate(output_format=fmt).status == 200
        r = server.request("POST", EDIT, {"prompt": "w", "size": "32x32", "num_inference_steps": 1,
                                          "images": [{"image_url": common.data_url(common.png_bytes(64, 64))}]})
        assert r.status == 200, r
        assert server.generate(stream=True).status == 200
        cls.rss_after_warmup = server.rss_mb()

    def send(self, data, how):
        with common.raw_connect(server.port, timeout=CASE_TIMEOUT_S) as s:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
            if how == "close":
                return "closed", {}, b""
            if how == "half":
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            try:
                return common.read_response(s, timeout=CASE_TIMEOUT_S)
            except (ConnectionResetError, BrokenPipeError):
                return None, {}, b""
            except (socket.timeout, TimeoutError):
                return "timeout", {}, b""
            except AssertionError as e:  # not HTTP at all
                return "garbled", {}, str(e).encode()

    def test_1_generated_bodies(self):
        fuzz = Fuzzer(SEED)
        counts, failures = {}, []
        started = time.monotonic()
        for i in range(COUNT):
            kind, data, how = fuzz.case()
            status, headers, body = self.send(data, how)
            counts.setdefault(kind, {}).setdefault(status, 0)
            counts[kind][status] += 1
            if ((isinstance(status, int) and status >= 500) or (status is None and how == "full")
                    or status in ("timeout", "garbled")):
                failures.append(f"case {i} ({kind}): {status} {body[:300]!r}\n  request: {data[:300]!r}")
            if i % 200 == 199:
                print(f"  {i + 1} cases, {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
            if time.monotonic() - started > RUN_LIMIT_S:
                failures.append(f"stopped after {i + 1} cases: the run took over {RUN_LIMIT_S} s")
                break
            if not server.alive():
                self.fail(f"server died at case {i} ({kind}, seed {SEED}): exit {server.proc.returncode}\n"
                          f"request: {data[:500]!r}\n{server.log_tail()}")
        elapsed = time.monotonic() - started
        summary = "\n".join(f"  {k}: {v}" for k, v in sorted(counts.items()))
        with open(os.path.join(common.ARTIFACTS, "server-malformed-summary.txt"), "w") as f:
            f.write(f"seed {SEED}, {COUNT} cases in {elapsed:.1f} s\n{summary}\n" + "\n".join(failures))
        print(f"\n{COUNT} malformed cases in {elapsed:.1f} s (seed {SEED}):\n{summary}")
        # the server is well, and did not keep what the bad requests brought
        self.assertEqual(server.request("GET", "/health", timeout=30).status, 200)
        self.assertEqual(server.generate().status, 200)
        server.wait_metric("flux2_queue_depth", lambda v: v == 0, timeout=60)
        grown = server.rss_mb() - self.rss_after_warmup
        print(f"RSS: {self.rss_after_warmup:.0f} MB after warm-up, {grown:+.0f} MB after the run")
        if failures:
            self.fail(f"{len(failures)} of {COUNT} cases got a 5xx or no answer (seed {SEED}; all of them in "
                      f"test-artifacts/server-malformed-summary.txt):\n" + "\n".join(failures[:8]))
        self.assertLess(grown, RSS_BOUND_MB, f"RSS grew by {grown:.0f} MB over the malformed run")

    def test_2_slow_clients(self):
        """Clients that send half a request and stall must not block others."""
        body = json.dumps({"prompt": "slow", **common.TINY}).encode()
        full = common.http_bytes("POST", GEN, body, {"Content-Type": "application/json"})
        stalled = []
        try:
            for part in (full[:10], full[:40], full[:full.index(b"\r\n\r\n")], full[:-5], b"GET /health HTTP/1.1\r\n"):
                s = common.raw_connect(server.port)
                s.sendall(part)
                stalled.append(s)
            time.sleep(0.5)
            for _ in range(3):
                t = time.monotonic()
                r = server.request("GET", "/health", timeout=30)
                self.assertEqual(r.status, 200)
                self.assertLess(time.monotonic() - t, 2.0, "a stalled client held up /health")
            t = time.monotonic()
            self.assertEqual(server.generate().status, 200)
            self.assertLess(time.monotonic() - t, 30)
            # a slow client that finishes its request late is still answered
            s = stalled.pop()
            time.sleep(0.5)
            try:
                s.sendall(b"Host: x\r\n\r\n")
                status, _, _ = common.read_response(s, timeout=30)
                self.assertIn(status, (200, 408, None))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may have timed it out: fine
            s.close()
        finally:
            for s in stalled:
                s.close()
        self.assertEqual(server.request("GET", "/health").status, 200)
        self.assertTrue(server.alive())

    def test_3_many_connections_closed_mid_request(self):
        fuzz = Fuzzer(SEED + 1)
        for _ in range(100):
            data = fuzz.request(GEN, json.dumps(fuzz.base()))
            with common.raw_connect(server.port) as s:
                s.sendall(data[:fuzz.rng.randrange(1, len(data))])
                if fuzz.rng.random() < 0.5:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
        self.assertEqual(server.request("GET", "/health").status, 200)
        self.assertEqual(server.generate().status, 200)


if __name__ == "__main__":
    import unittest
    unittest.main()

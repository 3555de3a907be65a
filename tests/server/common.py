"""Shared helpers for the `flux2 serve` end-to-end tests: start/stop a server, plain HTTP calls, SSE, metrics.

Environment (set by run_server_tests.sh):
  FLUX2_BINARY          the flux2 executable (default: ../../build/flux2 from this folder)
  FLUX2_TEST_BUILD_DIR  where test artefacts go (BUILD_DIR/test-artifacts); default: the binary's folder
  FLUX2_TEST_DEMO_DIR   the FLUX2_DEMO_DIR every server and `flux2 generate` of the suite shares: the tiny random
                        pipeline (`flux2 bench --save-pipeline DIR --model tiny`, written there on first import when
                        missing) stands in for the trained demo model, so that requests take milliseconds; default: a
                        temporary folder made on first import and removed at exit
"""
import atexit
import base64
import http.client
import io
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
BINARY = os.path.abspath(os.environ.get("FLUX2_BINARY") or os.path.join(HERE, "..", "..", "build", "flux2"))
BUILD_DIR = os.path.abspath(os.environ.get("FLUX2_TEST_BUILD_DIR") or os.path.dirname(BINARY))
ARTIFACTS = os.path.join(BUILD_DIR, "test-artifacts")
os.makedirs(ARTIFACTS, exist_ok=True)

DEMO_DIR = os.environ.get("FLUX2_TEST_DEMO_DIR")
if not DEMO_DIR:
    DEMO_DIR = tempfile.mkdtemp(prefix="flux2-server-demo-")
    atexit.register(shutil.rmtree, DEMO_DIR, ignore_errors=True)
if not os.path.exists(os.path.join(DEMO_DIR, "model_index.json")):
    subprocess.run([BINARY, "bench", "--save-pipeline", DEMO_DIR, "--model", "tiny"], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=300)

# Small, fast requests: the demo model on two CPU cores.
TINY = {"size": "32x32", "num_inference_steps": 1}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ERROR_KEYS = {"message", "type", "param", "code"}


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_env(demo_dir=DEMO_DIR):
    """The environment of a flux2 process: FLUX2_DEMO_DIR = demo_dir, or none (the trained demo model of assets/)."""
    env = dict(os.environ)
    env.pop("FLUX2_DEMO_DIR", None)
    if demo_dir:
        env["FLUX2_DEMO_DIR"] = demo_dir
    env.pop("FLUX2_API_KEY", None)  # `serve` reads its key from there too: each test says which key it wants
    return env


def run_generate(output_path, prompt, seed, width, height, steps, images=(), num_images=1, timeout=300, extra=()):
    """`flux2 generate` with the suite's demo model: the reference the server's pixels must equal. With
    num_images > 1, output_path is a folder that receives the numbered files."""
    cmd = [BINARY, "generate", "--prompt", prompt, "--seed", str(seed), "--width", str(width),
           "--height", str(height), "--num-inference-steps", str(steps), "--output-path", output_path]
    if num_images != 1:
        cmd += ["--num-images", str(num_images)]
    for image in images:
        cmd += ["--image", image]
    cmd += list(extra)
    done = subprocess.run(cmd, env=demo_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout.decode(errors='replace')}")


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # http.client.HTTPMessage (case-insensitive .get)
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.body[:300]!r}>"


class Server:
    """One `flux2 serve` subprocess on a free port of 127.0.0.1, with the suite's demo folder (demo_dir=None: the
    trained demo model)."""

    def __init__(self, name, *args, api_key=None, ready_timeout=300, demo_dir=DEMO_DIR):
        self.name = name
        self.demo_dir = demo_dir
        self.args = list(args)
        self.api_key = api_key
        self.ready_timeout = ready_timeout
        self.proc = None
        self.port = None
        self._steps_per_second = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self, wait=True):
        self.port = free_port()
        cmd = [BINARY, "serve", "--host", "127.0.0.1", "--port", str(self.port)] + self.args
        if self.api_key:
            cmd += ["--api-key", self.api_key]
        self.log_path = os.path.join(ARTIFACTS, f"server-{self.name}.log")
        self._log = open(self.log_path, "wb")
        self._log.write((" ".join(cmd) + "\n").encode())
        self._log.flush()
        self.proc = subprocess.Popen(cmd, env=demo_env(self.demo_dir), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server {self.name} exited with {self.proc.returncode} before it was ready:\n"
                                     + self.log_tail())
            try:
                r = self.request("GET", "/health", timeout=5, auth=False)
                if r.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server {self.name} not ready within {self.ready_timeout} s:\n" + self.log_tail())

    def stop(self, timeout=60):
        """SIGTERM, then wait; returns the exit code (kills and raises if it does not exit in time)."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self._log.close()
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"server {self.name} did not exit within {timeout} s of SIGTERM:\n"
                                 + self.log_tail())
        finally:
            self._log.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no log)"

    def rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        raise AssertionError("VmRSS not found")

    # -- HTTP --------------------------------------------------------------------------------------------------
    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    def auth_headers(self):
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def connection(self, timeout=120):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=120, auth=True):
        """One request on a fresh connection. `body` may be bytes, str or a JSON-able object."""
        all_headers = dict(self.auth_headers()) if auth else {}
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            all_headers["Content-Type"] = "application/json"
        if isinstance(body, str):
            body = body.encode()
        all_headers.update(headers or {})
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=all_headers)
            r = conn.getresponse()
            return Response(r.status, r.headers, r.read())
        finally:
            conn.close()

    def generate(self, timeout=300, **fields):
        body = {"prompt": "a small red fox", "seed": 1}
        body.update(TINY)
        body.update(fields)
        body = {k: v for k, v in body.items() if v is not None}  # a field set to None is left out
        return self.request("POST", "/v1/images/generations", body, timeout=timeout)

    def metrics_text(self):
        r = self.request("GET", "/metrics")
        if r.status != 200:
            raise AssertionError(f"/metrics answered {r.status}: {r.body[:300]!r}")
        return r.body.decode()

    def metric(self, name, **labels):
        """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
        return metric_sum(parse_metrics(self.metrics_text()), name, **labels)

    def wait_metric(self, name, predicate, timeout=30, **labels):
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.metric(name, **labels)
            if predicate(value):
                return value
            time.sleep(0.05)
        raise AssertionError(f"{name}{labels or ''} stayed at {value} for {timeout} s")

    # -- slow requests -----------------------------------------------------------------------------------------
    def steps_per_second(self, size=256):
        """Denoising steps per second at size x size, measured once (for requests that must run a while)."""
        if self._steps_per_second is None:
            self.generate(size=f"{size}x{size}", num_inference_steps=1)  # warm-up
            t = time.monotonic()
            r = self.generate(size=f"{size}x{size}", num_inference_steps=3)
            wall = time.monotonic() - t
            assert r.status == 200, r
            denoise_ms = server_timing(r.headers).get("denoise")
            per_step = (denoise_ms / 1000.0 / 3) if denoise_ms else wall / 3
            self._steps_per_second = 1.0 / max(per_step, 1e-3)
        return self._steps_per_second

    def slow_fields(self, seconds, size=256):
        """Generation fields for a request that denoises for about `seconds` (at most 1000 steps)."""
        steps = int(min(1000, max(2, math.ceil(seconds * self.steps_per_second(size)))))
        return {"size": f"{size}x{size}", "num_inference_steps": steps}


def server_timing(headers):
    """Server-Timing header -> {name: milliseconds}."""
    out = {}
    for part in (headers.get("Server-Timing") or "").split(","):
        bits = [b.strip() for b in part.split(";")]
        if not bits[0]:
            continue
        for b in bits[1:]:
            if b.startswith("dur="):
                try:
                    out[bits[0]] = float(b[4:])
                except ValueError:
                    pass
    return out


def parse_metrics(text):
    """Prometheus text -> list of (name, {label: value}, float)."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, rest = line.split("{", 1)
            labels_text, value_text = rest.rsplit("}", 1)
            labels = {}
            for item in _split_labels(labels_text):
                k, v = item.split("=", 1)
                labels[k.strip()] = json.loads(v.strip())
        else:
            name, value_text = line.split(None, 1)
            labels = {}
        value_text = value_text.split()[0]
        samples.append((name.strip(), labels, float(value_text)))
    return samples


def _split_labels(text):
    items, cur, in_str, esc = [], "", False, False
    for ch in text:
        if esc:
            cur += ch
            esc = False
        elif ch == "\\":
            cur += ch
            esc = True
        elif ch == '"':
            cur += ch
            in_str = not in_str
        elif ch == "," and not in_str:
            if cur.strip():
                items.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        items.append(cur)
    return items


def metric_sum(samples, name, **labels):
    return sum(v for n, l, v in samples if n == name and all(l.get(k) == str(x) for k, x in labels.items()))


def iter_sse(resp):
    """(event, data dict) pairs from an http.client response carrying text/event-stream."""
    event, data = None, []
    while True:
        line = resp.readline()
        if not line:
            break
        line = line.decode().rstrip("\r\n")
        if line == "":
            if data:
                yield event or "message", json.loads("\n".join(data))
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
    if data:
        yield event or "message", json.loads("\n".join(data))


def png_bytes(width, height, seed=0, mode="RGB"):
    """A deterministic test picture as PNG."""
    from PIL import Image
    img = Image.new(mode, (width, height))
    px = img.load()
    for y in range(height):
        for x in range(width):
            px[x, y] = ((x * 7 + seed * 31) % 256, (y * 5 + seed * 17) % 256, ((x + y) * 3 + seed) % 256)[:len(mode)]
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def jpeg_bytes(width, height, seed=0):
    from PIL import Image
    img = Image.open(io.BytesIO(png_bytes(width, height, seed)))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def data_url(data, mime="image/png"):
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def decode_image(data):
    from PIL import Image
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def multipart(fields, files):
    """(body, content type) for multipart/form-data. files: [(field, filename, bytes, content type)]."""
    boundary = "flux2-test-" + os.urandom(8).hex()
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n".encode())
        out.write(str(value).encode() + b"\r\n")
    for field, filename, content, ctype in files:
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n"
                  f"Content-Type: {ctype}\r\n\r\n".encode())
        out.write(content + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


class ServerTestCase(unittest.TestCase):
    """Base: asserts for the OpenAI error body and images."""

    def assertError(self, r, status, type_=None, code=None, param=None):
        self.assertEqual(r.status, status, f"expected {status}, got {r}")
        ctype = r.headers.get("Content-Type", "")
        self.assertIn("application/json", ctype, f"error body content type: {ctype!r}")
        body = r.json()
        self.assertIn("error", body, body)
        err = body["error"]
        self.assertTrue(ERROR_KEYS.issubset(err.keys()), f"error keys {sorted(err.keys())} lack some of {ERROR_KEYS}")
        self.assertIsInstance(err["message"], str)
        self.assertTrue(err["message"], "empty error message")
        if type_ is not None:
            self.assertEqual(err["type"], type_, err)
        if code is not None:
            self.assertEqual(err["code"], code, err)
        if param is not None:
            if isinstance(param, (tuple, list, set)):
                self.assertIn(err["param"], param, err)
            else:
                self.assertEqual(err["param"], param, err)
        return err

    def assertImage(self, data, width, height, fmt="PNG"):
        img = decode_image(data)
        self.assertEqual(img.format, fmt)
        self.assertEqual(img.size, (width, height))
        return img


def start_in_thread(fn, *args, **kwargs):
    """Runs fn in a daemon thread; returns (thread, box) where box['result'] or box['error'] is set at the end."""
    box = {}

    def run():
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - reported to the test
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


# -- raw sockets: for requests that http.client will not send (broken HTTP, partial bodies, early closes) ------------
def raw_connect(port, timeout=30):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def http_bytes(method, path, body=b"", headers=None, content_length=None):
    """An HTTP/1.1 request as bytes (Content-Length from the body unless given)."""
    if isinstance(body, str):
        body = body.encode()
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if content_length is None:
        content_length = len(body)
    if content_length is not False:
        lines.append(f"Content-Length: {content_length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_response(sock, timeout=30):
    """(status, {lower-case header: value}, body) read from sock until the body is complete or the peer closes;
    status None when the server closed without answering."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in data or data.startswith(b"HTTP/1.1 100"):
        if data.startswith(b"HTTP/1.1 100") and b"\r\n\r\n" in data:
            data = data.partition(b"\r\n\r\n")[2]  # an interim 100 Continue
            continue
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            if not data:
                return None, {}, b""
            break
        data += chunk
        if time.monotonic() > deadline:
            raise TimeoutError("no complete response head")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise AssertionError(f"not an HTTP response: {lines[0]!r}")
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    length = headers.get("content-length")
    while length is None or len(body) < int(length):
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        body += chunk
    return status, headers, body


def raw_exchange(port, data, timeout=30):
    """Sends `data` on a new connection and reads the answer (see read_response)."""
    with raw_connect(port, timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_response(s, timeout)

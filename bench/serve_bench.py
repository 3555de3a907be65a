#!/usr/bin/env python3
"""Times `flux2 serve` as a client sees it (standard library only, so it runs on the GPU machine as is).

Starts the server on a synthetic pipeline folder, reports the time from start to ready (/health == 200), the latency
of one request (default 1024x1024, 28 steps) with its Server-Timing breakdown, the throughput with several concurrent
clients, and the server's per-step time (denoise / steps from Server-Timing) for comparison with `flux2 bench`'s
step time measured in the same call (--bench-step-s).
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body, timeout=3600):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=timeout) as r:
        data = json.loads(r.read())
        timing = r.headers.get("Server-Timing", "")
    return time.perf_counter() - t0, data, timing


def parse_timing(header):
    out = {}
    for part in header.split(","):
        name, _, dur = part.strip().partition(";dur=")
        if dur:
            out[name] = float(dur) / 1000.0
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flux2", required=True)
    ap.add_argument("--model-path", required=True)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=28)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests-per-client", type=int, default=2)
    ap.add_argument("--bench-step-s", type=float, default=0.0, help="flux2 bench's s/step at the same size")
    ap.add_argument("--extra", default="", help="more flags for flux2 serve")
    a = ap.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [a.flux2, "serve", "--model-path", a.model_path, "--device", "cuda", "--port", str(port),
           "--max-queue", str(4 * a.clients)] + a.extra.split()
    t0 = time.perf_counter()
    server = subprocess.Popen(cmd, stderr=open(os.environ.get("SERVE_LOG", "/tmp/serve.log"), "w"))
    try:
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except Exception:
                pass
            if server.poll() is not None:
                sys.exit(f"flux2 serve exited with {server.returncode}")
            time.sleep(0.2)
        ready_s = time.perf_counter() - t0
        print(f"start to ready: {ready_s:.1f} s")

        body = {"prompt": "a lighthouse at dusk, 35mm photo", "size": f"{a.size}x{a.size}",
                "num_inference_steps": a.steps, "seed": 1}
        post(base + "/v1/images/generations", body)  # warm-up: CUDA graphs, cuDNN plans for this shape
        latency, _, timing = post(base + "/v1/images/generations", body)
        t = parse_timing(timing)
        per_step = t.get("denoise", 0) / a.steps
        print(f"one request {a.size}x{a.size}, {a.steps} steps: {latency:.2f} s end to end; "
              + ", ".join(f"{k} {v:.3f} s" for k, v in t.items()))
        print(f"server step time {per_step:.4f} s/step (denoise / steps)")
        if a.bench_step_s > 0:
            print(f"flux2 bench step time {a.bench_step_s:.4f} s/step: server overhead "
                  f"{(per_step / a.bench_step_s - 1) * 100:+.2f}% per step, "
                  f"{(latency / (a.bench_step_s * a.steps) - 1) * 100:+.1f}% end to end over steps alone")

        results, errors = [], []

        def client():
            for _ in range(a.requests_per_client):
                try:
                    results.append(post(base + "/v1/images/generations", body)[0])
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(repr(e))

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(a.clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0
        n = len(results)
        print(f"{a.clients} concurrent clients: {n} images in {wall:.1f} s = {n / wall * 60:.2f} images/min, "
              f"mean latency {sum(results) / max(n, 1):.1f} s, errors {len(errors)} {errors[:2]}")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            print(f"server exit code {server.wait(timeout=120)}")
        except subprocess.TimeoutExpired:
            server.kill()
            print("server did not stop within 120 s")


if __name__ == "__main__":
    main()

"""Load: 16 client threads send 200 tiny requests in all. Every one is answered (200, or 429 when the queue is
full), none is lost, ids are unique, and the queue drains to 0."""
import base64
import json
import threading
import time

import common

THREADS = 16
REQUESTS = 200
server = None


def setUpModule():
    global server
    server = common.Server("load").start()


def tearDownModule():
    if server:
        server.stop()


class LoadTest(common.ServerTestCase):
    def test_concurrent_clients(self):
        lock = threading.Lock()
        next_index = [0]
        results, errors = [], []

        def worker():
            while True:
                with lock:
                    if next_index[0] >= REQUESTS:
                        return
                    i = next_index[0]
                    next_index[0] += 1
                try:
                    r = server.generate(prompt=f"load {i}", seed=i, timeout=300)
                except Exception as e:  # noqa: BLE001 - a lost request
                    with lock:
                        errors.append(f"request {i}: {type(e).__name__}: {e}")
                    continue
                with lock:
                    results.append((i, r))
                if r.status == 429:
                    time.sleep(0.2)  # a client backs off a little after a 429

        started = time.monotonic()
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        elapsed = time.monotonic() - started
        self.assertFalse(any(t.is_alive() for t in threads), "client threads still waiting after 600 s")
        self.assertFalse(errors, f"{len(errors)} requests lost:\n" + "\n".join(errors[:20]))
        self.assertEqual(len(results), REQUESTS)

        by_status = {}
        for _, r in results:
            by_status[r.status] = by_status.get(r.status, 0) + 1
        print(f"\n{REQUESTS} requests from {THREADS} threads in {elapsed:.1f} s: {by_status}")
        self.assertEqual(set(by_status) - {200, 429}, set(), by_status)
        self.assertGreater(by_status.get(200, 0), 0)

        ids = []
        for i, r in results:
            if r.status == 200:
                body = r.json()
                ids.append(body["id"])
                png = base64.b64decode(body["data"][0]["b64_json"])
                self.assertTrue(png.startswith(common.PNG_MAGIC), f"request {i}")
            else:
                self.assertError(r, 429, "rate_limit_error", "queue_full")
                self.assertTrue(r.headers.get("Retry-After"), f"request {i}: 429 without Retry-After")
        self.assertEqual(len(ids), len(set(ids)), "response ids are not unique")

        server.wait_metric("flux2_queue_depth", lambda v: v == 0, timeout=30)
        server.wait_metric("flux2_jobs_running", lambda v: v == 0, timeout=30)
        samples = common.parse_metrics(server.metrics_text())
        self.assertEqual(common.metric_sum(samples, "flux2_queue_depth"), 0)
        for status in (200, 429):
            counted = common.metric_sum(samples, "flux2_requests_total", endpoint="/v1/images/generations",
                                        status=str(status))
            self.assertGreaterEqual(counted, by_status.get(status, 0), f"flux2_requests_total status {status}")
        self.assertGreaterEqual(common.metric_sum(samples, "flux2_images_generated_total"), by_status.get(200, 0))


if __name__ == "__main__":
    import unittest
    unittest.main()

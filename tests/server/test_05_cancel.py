"""Cancellation: a client that goes away in the middle of a long request cancels its job, and the next request is
served at once instead of after the abandoned one."""
import json
import time

import common

SLOW_SECONDS = 40  # what the abandoned request would cost if it ran to the end
PROMPT_LIMIT_S = 10  # the next request must be done well before that
server = None


def setUpModule():
    global server
    server = common.Server("cancel").start()


def tearDownModule():
    if server:
        server.stop()


class CancelTest(common.ServerTestCase):
    @classmethod
    def setUpClass(cls):
        cls.slow = server.slow_fields(SLOW_SECONDS)

    def next_request_is_prompt(self, closed_at):
        r = server.generate(prompt="after the cancelled one")
        took = time.monotonic() - closed_at
        self.assertEqual(r.status, 200, r)
        self.assertLess(took, PROMPT_LIMIT_S, f"the next request took {took:.1f} s: the abandoned job ran on")

    def test_streaming_client_goes_away(self):
        before = server.metric("flux2_jobs_cancelled_total")
        conn = server.connection()
        conn.request("POST", "/v1/images/generations", json.dumps({"prompt": "long", "stream": True, **self.slow}),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        event, data = next(common.iter_sse(resp))
        self.assertEqual(event, "image_generation.progress")
        self.assertEqual(data["total"], self.slow["num_inference_steps"])
        resp.close()  # the response holds the socket: close both
        conn.close()
        closed_at = time.monotonic()
        server.wait_metric("flux2_jobs_cancelled_total", lambda v: v >= before + 1, timeout=PROMPT_LIMIT_S)
        server.wait_metric("flux2_jobs_running", lambda v: v == 0, timeout=PROMPT_LIMIT_S)
        self.next_request_is_prompt(closed_at)

    def test_plain_client_goes_away(self):
        before = server.metric("flux2_jobs_cancelled_total")
        s = common.raw_connect(server.port)
        s.sendall(common.http_bytes("POST", "/v1/images/generations", json.dumps({"prompt": "long", **self.slow}),
                                    {"Content-Type": "application/json"}))
        server.wait_metric("flux2_jobs_running", lambda v: v == 1, timeout=20)
        time.sleep(1.0)  # well into the denoising loop
        s.close()
        closed_at = time.monotonic()
        server.wait_metric("flux2_jobs_cancelled_total", lambda v: v >= before + 1, timeout=PROMPT_LIMIT_S)
        self.next_request_is_prompt(closed_at)

    def test_waiting_client_goes_away(self):
        """A job still in the queue whose client leaves never runs."""
        before = server.metric("flux2_jobs_cancelled_total")
        before_images = server.metric("flux2_images_generated_total")
        conn = server.connection()
        conn.request("POST", "/v1/images/generations",
                     json.dumps({"prompt": "runs", "stream": True, **server.slow_fields(4)}),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        next(common.iter_sse(resp))  # running
        waiting = common.raw_connect(server.port)
        waiting.sendall(common.http_bytes("POST", "/v1/images/generations",
                                          json.dumps({"prompt": "waits", **self.slow}),
                                          {"Content-Type": "application/json"}))
        server.wait_metric("flux2_queue_depth", lambda v: v == 1, timeout=10)
        waiting.close()
        events = list(common.iter_sse(resp))  # the first one runs to its end
        conn.close()
        closed_at = time.monotonic()
        self.assertEqual(events[-1][0], "image_generation.completed")
        server.wait_metric("flux2_queue_depth", lambda v: v == 0, timeout=PROMPT_LIMIT_S)
        server.wait_metric("flux2_jobs_cancelled_total", lambda v: v >= before + 1, timeout=PROMPT_LIMIT_S)
        self.next_request_is_prompt(closed_at)
        self.assertEqual(server.metric("flux2_images_generated_total") - before_images, 2)


if __name__ == "__main__":
    import unittest
    unittest.main()

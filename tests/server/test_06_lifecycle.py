"""Start-up and shutdown: /health while loading, the log lines, and SIGTERM/SIGINT while a request runs."""
import base64
import json
import signal
import time

import common


class StartupTest(common.ServerTestCase):
    def test_health_while_loading_then_ready(self):
        server = common.Server("startup").start(wait=False)
        try:
            seen = set()
            deadline = time.monotonic() + server.ready_timeout
            while time.monotonic() < deadline:
                self.assertTrue(server.alive(), server.log_tail())
                try:
                    r = server.request("GET", "/health", timeout=5)
                except OSError:
                    time.sleep(0.02)  # not listening yet
                    continue
                body = r.json()
                seen.add((r.status, body.get("status")))
                if r.status == 503:
                    self.assertEqual(body, {"status": "loading"})
                    live = server.request("GET", "/health/live", timeout=5)
                    self.assertEqual(live.status, 200)
                    early = server.generate()
                    if early.status == 503:  # still loading
                        self.assertError(early, 503, "server_error", "model_loading")
                    continue
                self.assertEqual((r.status, body), (200, {"status": "ok"}))
                break
            self.assertIn((200, "ok"), seen)
            print(f"\n/health during start-up: {sorted(seen)}")
            self.assertEqual(server.generate().status, 200)
            with open(server.log_path, encoding="utf-8", errors="replace") as f:
                log = f.read()
            listening = log.find(f"listening on http://127.0.0.1:{server.port}")
            self.assertGreaterEqual(listening, 0, "no 'listening on' line:\n" + log[-2000:])
            self.assertGreater(log.find("ready", listening), listening, "no 'ready' after 'listening on'")
        finally:
            code = server.stop()
            self.assertEqual(code, 0, f"SIGTERM on an idle server: exit {code} (negative: killed by that signal)\n"
                             + server.log_tail(5))

    def test_port_in_use_fails_fast(self):
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            import subprocess
            done = subprocess.run([common.BINARY, "serve", "--host", "127.0.0.1", "--port", str(port)],
                                  env=common.demo_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=60)
            self.assertNotEqual(done.returncode, 0, "serve started on a port that is in use")


class ShutdownTest(common.ServerTestCase):
    def test_sigterm_lets_the_running_request_finish(self):
        timeout = 30
        server = common.Server("shutdown", "--shutdown-timeout", str(timeout)).start()
        try:
            slow = server.slow_fields(4)
            running_thread, running = common.start_in_thread(
                server.request, "POST", "/v1/images/generations",
                {"prompt": "finish me", "seed": 3, **slow}, timeout=120)
            server.wait_metric("flux2_jobs_running", lambda v: v == 1, timeout=20)
            waiting_thread, waiting = common.start_in_thread(
                server.request, "POST", "/v1/images/generations",
                {"prompt": "queued at shutdown", **common.TINY}, timeout=120)
            server.wait_metric("flux2_queue_depth", lambda v: v == 1, timeout=10)

            server.proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            # no new work is taken while shutting down
            time.sleep(0.3)
            try:
                health = server.request("GET", "/health", timeout=5)
                self.assertEqual(health.status, 503)
                self.assertEqual(health.json(), {"status": "shutting_down"})
                late = server.generate(timeout=10)
                self.assertError(late, 503, "server_error", "shutting_down")
            except OSError:
                pass  # the listener is already closed: also "not accepting"

            running_thread.join(120)
            code = server.proc.poll()
            if code is not None and code < 0:
                self.fail(f"SIGTERM killed the server (exit {code}) instead of letting the running request finish; "
                          f"the request got {running.get('error') or running.get('result')!r}\n"
                          + server.log_tail(5))
            self.assertNotIn("error", running, running.get("error"))
            r = running["result"]
            self.assertEqual(r.status, 200, r)
            png = base64.b64decode(r.json()["data"][0]["b64_json"])
            self.assertImage(png, *map(int, slow["size"].split("x")))

            waiting_thread.join(60)
            self.assertNotIn("error", waiting, f"the queued request got no answer: {waiting.get('error')!r}")
            w = waiting["result"]
            if w.status != 200:
                self.assertError(w, 503, "server_error", "shutting_down")

            code = server.proc.wait(timeout + 10)
            took = time.monotonic() - signalled
            self.assertEqual(code, 0, server.log_tail())
            self.assertLess(took, timeout + 5)
        finally:
            if server.alive():
                server.proc.kill()
                server.proc.wait()
            server.stop()

    def test_sigint_idle_exits_0(self):
        server = common.Server("sigint").start()
        server.proc.send_signal(signal.SIGINT)
        code = server.proc.wait(30)
        self.assertEqual(code, 0, f"SIGINT on an idle server: exit {code} (negative: killed by that signal)\n"
                         + server.log_tail(5))
        server.stop()


if __name__ == "__main__":
    import unittest
    unittest.main()

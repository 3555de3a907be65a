"""The page at / in a real browser (Debian's chromium + chromedriver through selenium): type a prompt, generate,
watch the progress bar, get the image; edits with a reference file; errors shown in the status line. The
screenshot is kept as BUILD_DIR/test-artifacts/server-page.png."""
import base64
import os
import tempfile
import unittest

import common

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
KEY = "sk-flux2-page"
server = None


def setUpModule():
    global server
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        raise unittest.SkipTest(f"{CHROMIUM} or {CHROMEDRIVER} is missing (Debian packages chromium and "
                                "chromium-driver): the browser test cannot run")
    server = common.Server("page", "--model-id", "flux2-page-test", api_key=KEY).start()


def tearDownModule():
    if server:
        server.stop()


class WebPageTest(common.ServerTestCase):
    @classmethod
    def setUpClass(cls):
        os.environ["SE_OFFLINE"] = "true"  # selenium must never download a browser or driver
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--window-size=1100,820", "--disable-extensions", "--no-first-run"):
            options.add_argument(arg)
        service = Service(CHROMEDRIVER, log_output=os.path.join(common.ARTIFACTS, "chromedriver.log"))
        cls.driver = webdriver.Chrome(service=service, options=options)
        cls.driver.set_page_load_timeout(60)
        cls.tmp = tempfile.mkdtemp(prefix="flux2-page-")

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()

    def setUp(self):
        # each test starts from a fresh page with nothing stored (no API key)
        self.driver.get(server.base_url + "/")
        self.driver.execute_script("localStorage.clear();")
        self.driver.refresh()

    def el(self, element_id):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.ID, element_id)

    def wait(self, condition, timeout=120, message=""):
        from selenium.webdriver.support.ui import WebDriverWait
        return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(lambda d: condition(), message)

    def set_value(self, element_id, value):
        el = self.el(element_id)
        el.clear()
        el.send_keys(str(value))

    def prop(self, element_id, name):
        return self.driver.execute_script(f"return document.getElementById('{element_id}')['{name}'];")

    def test_generate_and_edit_in_the_page(self):
        from selenium.webdriver.common.keys import Keys
        d = self.driver
        self.assertIn("flux2", d.title)
        # without a key the model list is refused; with it, the model id shows
        self.wait(lambda: "unavailable" in self.el("model").text, 30, "no 401 shown for /v1/models")
        self.el("api-key").send_keys(KEY, Keys.TAB)  # change event: saved and models reloaded
        self.wait(lambda: self.el("model").text == "flux2-page-test", 30, "model id not shown")

        self.assertEqual(self.prop("width", "value"), "128")
        self.assertEqual(self.prop("height", "value"), "128")
        self.assertEqual(self.prop("seed", "value"), "0")
        self.assertEqual(self.prop("steps", "value"), "")
        self.el("prompt").send_keys("a lighthouse at dusk")
        self.set_value("width", 64)
        self.set_value("height", 64)
        self.set_value("steps", 2)
        self.set_value("seed", 5)
        self.el("generate").click()
        self.wait(lambda: (self.prop("result", "src") or "").startswith("data:image/png;base64,"), 180,
                  "no image: status " + self.el("status").text)
        self.assertEqual(self.prop("progress", "max"), 2)
        self.assertEqual(self.prop("progress", "value"), self.prop("progress", "max"), "progress bar not at max")
        self.wait(lambda: not self.prop("generate", "disabled"), 10)
        self.assertNotIn("error", self.el("status").get_attribute("class") or "")
        d.save_screenshot(os.path.join(common.ARTIFACTS, "server-page.png"))

        src = self.prop("result", "src")
        png = base64.b64decode(src.split(",", 1)[1])
        self.assertImage(png, 64, 64)
        self.assertEqual(self.prop("download", "href"), src)
        self.assertEqual(self.el("download").get_attribute("download"), "flux2.png")
        api = server.generate(prompt="a lighthouse at dusk", width=64, height=64, num_inference_steps=2, seed=5,
                              size=None)  # None: no "size" key
        self.assertEqual(api.status, 200, api)
        self.assertEqual(base64.b64decode(api.json()["data"][0]["b64_json"]), png, "page and API images differ")

        # the key survives a reload (localStorage)
        d.refresh()
        self.wait(lambda: self.el("model").text == "flux2-page-test", 30)
        self.assertEqual(self.prop("api-key", "value"), KEY)

        # edit: a reference image makes it a multipart request to /v1/images/edits
        ref = os.path.join(self.tmp, "ref.png")
        with open(ref, "wb") as f:
            f.write(common.png_bytes(64, 64, seed=8))
        self.el("prompt").send_keys("make it winter")
        self.set_value("width", 32)
        self.set_value("height", 48)
        self.set_value("steps", 1)
        self.el("images").send_keys(ref)
        self.el("generate").click()
        self.wait(lambda: (self.prop("result", "src") or "").startswith("data:image/png;base64,"), 180,
                  "no edited image: status " + self.el("status").text)
        self.assertImage(base64.b64decode(self.prop("result", "src").split(",", 1)[1]), 32, 48)
        before = server.metric("flux2_requests_total", status="200")
        self.assertGreater(before, 0)

        # errors from the server land in the status line
        self.set_value("api-key", "wrong-key")
        self.el("generate").click()
        self.wait(lambda: "error" in (self.el("status").get_attribute("class") or ""), 60, "401 not shown")
        self.assertTrue(self.el("status").text.strip())
        unauthorized = self.el("status").text
        self.set_value("api-key", KEY)
        self.driver.execute_script("document.getElementById('images').value = '';")
        self.set_value("width", 48)
        self.set_value("height", 48)
        self.set_value("steps", 1001)
        self.el("generate").click()
        self.wait(lambda: not self.prop("generate", "disabled")
                  and "error" in (self.el("status").get_attribute("class") or "")
                  and self.el("status").text != unauthorized, 60, "400 not shown")
        self.assertIn("error", self.el("status").get_attribute("class"))
        d.save_screenshot(os.path.join(common.ARTIFACTS, "server-page-error.png"))

    def test_cancel_button_cancels_the_job(self):
        slow = server.slow_fields(30)
        side = slow["size"].split("x")[0]
        self.set_value("api-key", KEY)
        self.el("prompt").send_keys("a long one")
        self.set_value("width", side)
        self.set_value("height", side)
        self.set_value("steps", slow["num_inference_steps"])
        before = server.metric("flux2_jobs_cancelled_total")
        self.el("generate").click()
        self.wait(lambda: (self.prop("progress", "value") or 0) >= 1, 60, "no progress shown")
        self.assertEqual(self.prop("progress", "max"), slow["num_inference_steps"])
        self.assertTrue(self.el("status").text.startswith("Step "), self.el("status").text)
        self.el("cancel").click()
        self.wait(lambda: self.el("status").text == "Cancelled.", 10, "status: " + self.el("status").text)
        self.assertFalse(self.prop("generate", "disabled"))
        server.wait_metric("flux2_jobs_cancelled_total", lambda v: v >= before + 1, timeout=15)
        server.wait_metric("flux2_jobs_running", lambda v: v == 0, timeout=15)


if __name__ == "__main__":
    unittest.main()

#include "server/web_page.h"

namespace flux2::server {

namespace {

// One self-contained page. It talks only to the server that served it: GET /v1/models on load, then
// POST /v1/images/generations (JSON) or /v1/images/edits (multipart, when reference images are chosen) with
// stream=true, reading the Server-Sent Events from the response body (EventSource cannot POST).
constexpr std::string_view kPage = R"flux2page(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>flux2.cpp</title>
<style>
  :root {
    color-scheme: light dark;
    --bg: #f4f4f6; --card: #ffffff; --text: #1c1c22; --muted: #62626e; --line: #d9d9e0;
    --accent: #4f46e5; --accent-text: #ffffff; --error: #b42318; --focus: #818cf8;
  }
  @media (prefers-color-scheme: dark) {
    :root {
      --bg: #121216; --card: #1c1c22; --text: #ececf1; --muted: #a0a0ad; --line: #33333d;
      --accent: #818cf8; --accent-text: #111114; --error: #fda29b; --focus: #c7d2fe;
    }
  }
  * { box-sizing: border-box; }
  body {
    margin: 0; background: var(--bg); color: var(--text);
    font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  }
  header { display: flex; align-items: baseline; gap: 1rem; flex-wrap: wrap; padding: 1.2rem 1.5rem 0; }
  header h1 { margin: 0; font-size: 1.35rem; letter-spacing: -0.01em; }
  header p { margin: 0; color: var(--muted); }
  main {
    display: grid; grid-template-columns: minmax(280px, 400px) 1fr; gap: 1.25rem;
    padding: 1.25rem 1.5rem 1.5rem; align-items: start;
  }
  @media (max-width: 760px) { main { grid-template-columns: 1fr; } }
  .card { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 1.1rem; }
  form { display: grid; gap: 0.85rem; }
  .row { display: grid; grid-template-columns: 1fr 1fr; gap: 0.75rem; align-items: end; }
  label { display: grid; gap: 0.3rem; font-weight: 600; font-size: 0.9rem; }
  label small { font-weight: 400; color: var(--muted); }
  input, textarea {
    font: inherit; font-weight: 400; color: inherit; background: transparent; width: 100%;
    border: 1px solid var(--line); border-radius: 8px; padding: 0.5rem 0.6rem;
  }
  textarea { min-height: 6.5rem; resize: vertical; }
  input[type=file] { padding: 0.4rem; }
  input:focus-visible, textarea:focus-visible, button:focus-visible, a:focus-visible {
    outline: 2px solid var(--focus); outline-offset: 2px;
  }
  .buttons { display: flex; gap: 0.6rem; }
  button {
    font: inherit; font-weight: 600; border-radius: 8px; padding: 0.6rem 1.1rem; cursor: pointer;
    border: 1px solid var(--accent); background: var(--accent); color: var(--accent-text);
  }
  button.secondary { background: transparent; color: var(--text); border-color: var(--line); }
  button:disabled { opacity: 0.55; cursor: default; }
  progress { width: 100%; height: 0.7rem; accent-color: var(--accent); }
  #status { min-height: 1.45em; margin: 0.5rem 0 0; color: var(--muted); overflow-wrap: anywhere; }
  #status.error { color: var(--error); font-weight: 600; }
  .stage {
    display: grid; place-items: center; min-height: 320px; margin-top: 0.9rem;
    border: 1px dashed var(--line); border-radius: 10px; overflow: hidden;
    background-image: linear-gradient(45deg, rgba(127,127,127,.08) 25%, transparent 25%, transparent 75%,
                      rgba(127,127,127,.08) 75%), linear-gradient(45deg, rgba(127,127,127,.08) 25%, transparent 25%,
                      transparent 75%, rgba(127,127,127,.08) 75%);
    background-size: 20px 20px; background-position: 0 0, 10px 10px;
  }
  #result { max-width: 100%; max-height: 72vh; image-rendering: auto; }
  #result:not([src]) { display: none; }
  #placeholder { color: var(--muted); padding: 2rem; text-align: center; }
  .result-bar { display: flex; justify-content: space-between; align-items: center; gap: 1rem; margin-top: 0.7rem; }
  #download { color: var(--accent); font-weight: 600; }
  #download[aria-disabled=true] { color: var(--muted); pointer-events: none; text-decoration: none; }
  .meta { color: var(--muted); font-size: 0.85rem; }
  .hidden { display: none; }
</style>
</head>
<body>
<header>
  <h1>flux2.cpp</h1>
  <p>Model: <span id="model">loading&hellip;</span></p>
</header>
<main>
  <section class="card" aria-labelledby="form-title">
    <h2 id="form-title" class="hidden">Image settings</h2>
    <form id="form" novalidate>
      <label for="prompt">Prompt
        <textarea id="prompt" name="prompt" required placeholder="a lighthouse at dusk, 35mm photo"></textarea>
      </label>
      <div class="row">
        <label for="width">Width
          <input id="width" name="width" type="number" min="16" max="4096" step="16" value="1024" required>
        </label>
        <label for="height">Height
          <input id="height" name="height" type="number" min="16" max="4096" step="16" value="1024" required>
        </label>
      </div>
      <div class="row">
        <label for="steps">Steps <small>empty: model default</small>
          <input id="steps" name="steps" type="number" min="1" max="200" step="1" placeholder="default">
        </label>
        <label for="seed">Seed
          <input id="seed" name="seed" type="number" min="0" step="1" value="0" required>
        </label>
      </div>
      <label for="images">Reference images <small>optional, PNG or JPEG: edits them</small>
        <input id="images" name="images" type="file" multiple accept="image/png,image/jpeg,.png,.jpg,.jpeg">
      </label>
      <label for="api-key">API key <small>only if the server asks for one; kept in this browser</small>
        <input id="api-key" name="api-key" type="password" autocomplete="off" spellcheck="false">
      </label>
      <div class="buttons">
        <button id="generate" type="submit">Generate</button>
        <button id="cancel" type="button" class="secondary" disabled>Cancel</button>
      </div>
    </form>
  </section>
  <section class="card" aria-labelledby="result-title">
    <h2 id="result-title" class="hidden">Result</h2>
    <progress id="progress" max="1" value="0" aria-label="Progress"></progress>
    <p id="status" role="status" aria-live="polite">Ready.</p>
    <div class="stage">
      <img id="result" alt="">
      <div id="placeholder">Your image appears here.</div>
    </div>
    <div class="result-bar">
      <span id="meta" class="meta"></span>
      <a id="download" download="flux2.png" aria-disabled="true">Download PNG</a>
    </div>
  </section>
</main>
<script>
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const form = $("form"), keyInput = $("api-key"), progress = $("progress"), statusLine = $("status");
  const generateButton = $("generate"), cancelButton = $("cancel"), result = $("result");
  const download = $("download"), meta = $("meta"), placeholder = $("placeholder");
  const KEY_STORAGE = "flux2.apiKey";
  let controller = null;

  try { keyInput.value = localStorage.getItem(KEY_STORAGE) || ""; } catch (e) { /* storage may be blocked */ }
  keyInput.addEventListener("change", () => {
    try { localStorage.setItem(KEY_STORAGE, keyInput.value.trim()); } catch (e) { /* ignore */ }
    loadModels();
  });

  function authHeaders() {
    const key = keyInput.value.trim();
    return key ? { "Authorization": "Bearer " + key } : {};
  }

  function setStatus(text, isError) {
    statusLine.textContent = text;
    statusLine.classList.toggle("error", Boolean(isError));
  }

  // The message of an OpenAI-style error body, else the status text.
  async function errorMessage(response) {
    let message = "HTTP " + response.status + (response.statusText ? " " + response.statusText : "");
    try {
      const text = await response.text();
      try {
        const body = JSON.parse(text);
        if (body && body.error && body.error.message) message = body.error.message;
      } catch (e) {
        if (text) message += ": " + text.slice(0, 200);
      }
    } catch (e) { /* keep the status text */ }
    if (response.status === 429) {
      const retry = response.headers.get("Retry-After");
      if (retry) message += " (retry in " + retry + " s)";
    }
    if (response.status === 401) message += " - check the API key.";
    return message;
  }

  let sizeTyped = false;
  for (const id of ["width", "height"]) $(id).addEventListener("input", () => { sizeTyped = true; });

  async function loadModels() {
    const target = $("model");
    try {
      const response = await fetch("/v1/models", { headers: authHeaders() });
      if (!response.ok) { target.textContent = "unavailable (" + (await errorMessage(response)) + ")"; return; }
      const body = await response.json();
      const ids = (body.data || []).map((m) => m.id).filter(Boolean);
      target.textContent = ids.length ? ids.join(", ") : "none";
      // The model's own default size (the demo's is 128x128), unless the user has typed one.
      const size = /^(\d+)x(\d+)$/.exec((body.data && body.data[0] && body.data[0].default_size) || "");
      if (size && !sizeTyped) { $("width").value = size[1]; $("height").value = size[2]; }
    } catch (e) {
      target.textContent = "unreachable";
    }
  }

  // Calls onEvent(name, data) for each Server-Sent Event in the response body.
  async function readEvents(body, onEvent) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const dispatch = (block) => {
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") name = value;
        else if (field === "data") data.push(value);
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    };
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
      buffer = buffer.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        dispatch(block);
      }
      if (done) break;
    }
    if (buffer.trim()) dispatch(buffer);
  }

  // Small images are shown enlarged by a whole factor, with crisp pixels.
  result.addEventListener("load", () => {
    const side = Math.max(result.naturalWidth, result.naturalHeight, 1);
    const scale = Math.max(1, Math.floor(320 / side));
    result.style.width = scale > 1 ? result.naturalWidth * scale + "px" : "";
    result.style.imageRendering = scale > 1 ? "pixelated" : "auto";
  });

  function showImage(b64, format, info) {
    const mime = "image/" + (format || "png");
    const src = "data:" + mime + ";base64," + b64;
    result.src = src;
    result.alt = $("prompt").value.trim();
    placeholder.classList.add("hidden");
    download.href = src;
    download.setAttribute("aria-disabled", "false");
    meta.textContent = info;
  }

  function setBusy(busy) {
    generateButton.disabled = busy;
    cancelButton.disabled = !busy;
    form.setAttribute("aria-busy", busy ? "true" : "false");
  }

  function readInt(id) {
    const text = $(id).value.trim();
    if (text === "") return null;
    const value = Number(text);
    if (!Number.isInteger(value)) throw new Error($(id).labels[0].firstChild.textContent.trim() +
                                                  " must be a whole number.");
    return value;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (controller) return;
    let prompt, width, height, steps, seed;
    try {
      prompt = $("prompt").value.trim();
      if (!prompt) throw new Error("Please write a prompt.");
      width = readInt("width"); height = readInt("height"); steps = readInt("steps"); seed = readInt("seed");
      if (width === null || height === null) throw new Error("Width and height are required.");
      if (width % 16 || height % 16) throw new Error("Width and height must be multiples of 16.");
      if (seed === null) seed = 0;
    } catch (e) {
      setStatus(e.message, true);
      return;
    }

    const files = Array.from($("images").files || []);
    const headers = authHeaders();
    let url, body;
    if (files.length === 0) {
      url = "/v1/images/generations";
      const payload = { prompt, width, height, seed, stream: true };
      if (steps !== null) payload.num_inference_steps = steps;
      body = JSON.stringify(payload);
      headers["Content-Type"] = "application/json";
    } else {
      url = "/v1/images/edits";
      body = new FormData();
      body.append("prompt", prompt);
      body.append("width", String(width));
      body.append("height", String(height));
      body.append("seed", String(seed));
      if (steps !== null) body.append("num_inference_steps", String(steps));
      body.append("stream", "true");
      for (const file of files) body.append("image[]", file, file.name);
    }

    controller = new AbortController();
    setBusy(true);
    progress.max = 1;
    progress.removeAttribute("value");  // indeterminate until the first step
    setStatus(files.length ? "Uploading and waiting for the model..." : "Waiting for the model...");
    const started = performance.now();
    let completed = false;
    try {
      const response = await fetch(url, { method: "POST", headers, body, signal: controller.signal });
      if (!response.ok) throw new Error(await errorMessage(response));
      const type = response.headers.get("Content-Type") || "";
      if (!type.includes("text/event-stream")) {
        const json = await response.json();
        const item = json.data && json.data[0];
        if (!item || !item.b64_json) throw new Error("The server answered without an image.");
        showImage(item.b64_json, json.output_format, (json.size || "") + " · seed " + seed);
        completed = true;
      } else {
        await readEvents(response.body, (name, data) => {
          const kind = data.type || name;
          if (name === "error" || kind === "error") {
            throw new Error((data.error && data.error.message) || "The server reported an error.");
          }
          if (kind.endsWith(".progress")) {
            progress.max = Math.max(1, data.total || 1);
            progress.value = Math.min(data.step || 0, progress.max);
            const elapsed = typeof data.elapsed_s === "number" ? " · " + data.elapsed_s.toFixed(1) + " s" : "";
            setStatus("Step " + data.step + " of " + data.total + elapsed);
          } else if (kind.endsWith(".completed")) {
            progress.value = progress.max;
            showImage(data.b64_json, data.output_format, (data.size || "") + " · seed " + seed);
            completed = true;
          }
        });
      }
      if (!completed) throw new Error("The server closed the stream without an image.");
      progress.value = progress.max;
      setStatus("Done in " + ((performance.now() - started) / 1000).toFixed(1) + " s.");
    } catch (e) {
      if (controller) controller.abort();  // drop the connection: the server cancels what is left of the job
      if (e.name === "AbortError") {
        progress.value = 0;
        setStatus("Cancelled.");
      } else {
        if (!completed) progress.value = 0;
        setStatus(e.message || String(e), true);
      }
    } finally {
      controller = null;
      setBusy(false);
    }
  });

  cancelButton.addEventListener("click", () => { if (controller) controller.abort(); });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });

  loadModels();
})();
</script>
</body>
</html>
)flux2page";

}  // namespace

std::string_view web_page_html() { return kPage; }

}  // namespace flux2::server

// Durable Search's single-page app. No framework, no build step, no inline script (strict CSP).
// Every URL is relative, so the page works behind any host, port or path prefix. Progress comes
// from the status route's long-poll (timeoutSeconds + If-None-Match), never from busy polling.
// Third-party pages are shown only in iframes with an empty sandbox; data is set as text only.
"use strict";

const LONG_POLL_SECONDS = 30;
const $ = (id) => document.getElementById(id);

const state = { id: null, etag: null, generation: 0, frames: new Set(), providers: [] };

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function show(node, message) {
  node.textContent = message || "";
  node.hidden = !message;
}

async function problemText(response) {
  try {
    const body = await response.json();
    return body.detail || body.title || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status} ${response.statusText}`;
  }
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { cache: "no-store", ...options });
  } catch (error) {
    throw new Error(`cannot reach the Durable Search service (${error.message})`);
  }
  if (response.status >= 400) throw new Error(await problemText(response));
  return response;
}

// -- providers ---------------------------------------------------------------------------

async function loadProviders() {
  try {
    const { items } = await (await api("api/providers")).json();
    state.providers = items;
    const list = $("provider-list");
    list.replaceChildren(...items.map((name) =>
      el("label", {}, el("input", { type: "checkbox", value: name, name: "provider" }), ` ${name}`)));
    $("providers").hidden = items.length === 0;
    if (items.length === 0) show($("form-error"), "No SearchProviders in this namespace yet: apply some first.");
  } catch (error) {
    show($("form-error"), error.message);
  }
}

// -- start -------------------------------------------------------------------------------

async function start(event) {
  event.preventDefault();
  show($("form-error"), "");
  const query = $("query").value;
  if (!query.trim()) return show($("form-error"), "Type something to search for.");
  const providers = [...document.querySelectorAll("input[name=provider]:checked")].map((i) => i.value);
  $("start-button").disabled = true;
  try {
    const response = await api("api/searches", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(providers.length ? { query, providers } : { query }),
    });
    const { id } = await response.json();
    location.hash = `#/s/${id}`;
  } catch (error) {
    show($("form-error"), error.message);
  } finally {
    $("start-button").disabled = false;
  }
}

// -- one search --------------------------------------------------------------------------

function openFromHash() {
  const match = location.hash.match(/^#\/s\/([a-z0-9.-]+)$/);
  if (!match) {
    $("search").hidden = true;
    state.id = null;
    return;
  }
  follow(match[1]);
}

async function follow(id) {
  const generation = ++state.generation;
  Object.assign(state, { id, etag: null, frames: new Set() });
  $("search").hidden = false;
  $("frames").replaceChildren();
  $("chart").replaceChildren();
  $("progress-rows").replaceChildren();
  show($("watcher"), "");
  show($("search-error"), "");
  let failures = 0;
  while (generation === state.generation) {
    const url = `api/searches/${encodeURIComponent(id)}?timeoutSeconds=${state.etag ? LONG_POLL_SECONDS : 0}`;
    const headers = state.etag ? { "If-None-Match": state.etag } : {};
    let response;
    try {
      response = await fetch(url, { headers, cache: "no-store" });
    } catch (error) {
      failures += 1;
      show($("search-error"), `Connection lost; retrying… (${error.message})`);
      await sleep(Math.min(1000 * 2 ** failures, 15000));
      continue;
    }
    if (generation !== state.generation) return;
    if (response.status >= 400) {
      show($("search-error"), await problemText(response));
      $("terminate-button").disabled = true;
      return;
    }
    failures = 0;
    show($("search-error"), "");
    state.etag = response.headers.get("ETag");
    const document_ = await response.json();
    render(document_);
    if (response.status === 200) {
      showWatcher(id, generation);
      loadRecent();
      return;
    }
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function render(doc) {
  $("search-query").textContent = doc.input.query;
  const phase = $("search-phase");
  phase.textContent = doc.runtimeStatus;
  phase.className = `phase ${doc.runtimeStatus}`;
  const custom = doc.customStatus || {};
  const meta = [`${custom.progress || "0/0"} providers finished`];
  if (custom.duration) meta.push(`in ${custom.duration}`);
  meta.push(`started ${new Date(doc.createdTime).toLocaleTimeString()}`);
  $("search-meta").textContent = meta.join(" · ");
  $("terminate-button").disabled = doc.runtimeStatus !== "Running" && doc.runtimeStatus !== "Pending";
  const results = custom.results || [];
  $("progress-rows").replaceChildren(...results.map((r) => el("tr", {},
    el("td", { text: r.name }),
    el("td", { class: r.outcome || "", text: r.outcome || "running…" }),
    el("td", { text: r.statusCode ?? "" }),
    el("td", { text: r.attempts ?? "" }),
    el("td", { text: r.durationMs != null ? `${r.durationMs} ms` : "" }),
    el("td", { class: "outputs" }, ...outputItems(r.outputs)))));
  renderChart(results);
  for (const r of results) if (r.outcome && !state.frames.has(r.name)) addFrame(doc.id, r);
}

function outputItems(outputs) {
  // A provider's spec.outputs (CEL over its answer): values are strings, shown as text only.
  return Object.entries(outputs || {}).map(([name, value]) =>
    el("div", {}, el("code", { text: name }), el("span", { text: ` ${value}` })));
}

function renderChart(results) {
  const finished = results.filter((r) => r.durationMs != null);
  const longest = Math.max(1, ...finished.map((r) => r.durationMs));
  $("chart").replaceChildren(...finished.flatMap((r) => {
    const bar = el("div", { class: r.outcome === "Succeeded" ? "bar" : "bar failed" });
    bar.style.width = `${Math.max(1, (100 * r.durationMs) / longest)}%`; // CSSOM: allowed by the CSP
    return [el("span", { text: r.name }), el("div", {}, bar), el("span", { text: `${r.durationMs} ms` })];
  }));
}

function addFrame(id, result) {
  state.frames.add(result.name);
  const frame = el("iframe", {
    sandbox: "", // empty: no scripts, no same-origin, no forms, no top navigation
    referrerpolicy: "no-referrer",
    loading: "lazy",
    title: `Results from ${result.name}`,
    src: `api/searches/${encodeURIComponent(id)}/results/${encodeURIComponent(result.name)}`,
  });
  $("frames").append(el("div", { class: "frame" }, el("h4", { text: result.name }), frame));
}

async function showWatcher(id, generation) {
  // The watcher finishes a moment after the search: ask a few times, backing off.
  for (const wait of [0, 250, 500, 1000, 2000, 4000]) {
    await sleep(wait);
    if (generation !== state.generation) return;
    try {
      const watcher = await (await api(`api/searches/${encodeURIComponent(id)}/watcher`)).json();
      if (["Succeeded", "Failed", "Terminated"].includes(watcher.phase)) {
        const code = watcher.statusCode ? `answered ${watcher.statusCode}` : watcher.outcome;
        show($("watcher"), `Watcher: ${code} after ${watcher.polls} long-poll(s)`);
        return;
      }
      show($("watcher"), `Watcher: ${watcher.phase.toLowerCase()}…`);
    } catch (error) {
      show($("watcher"), `Watcher: ${error.message}`);
      return;
    }
  }
}

async function terminate() {
  if (!state.id) return;
  $("terminate-button").disabled = true;
  try {
    await api(`api/searches/${encodeURIComponent(state.id)}/terminate`, { method: "POST" });
  } catch (error) {
    show($("search-error"), error.message);
  }
}

// -- recent searches ---------------------------------------------------------------------

async function loadRecent() {
  try {
    const { items } = await (await api("api/searches?top=20")).json();
    $("recent-list").replaceChildren(...items.map((s) => el("li", {},
      el("a", { href: `#/s/${s.id}`, text: s.input.query }),
      el("span", { class: `phase ${s.runtimeStatus}`, text: s.runtimeStatus }),
      el("span", { class: "meta", text: new Date(s.createdTime).toLocaleString() }))));
    show($("recent-error"), items.length ? "" : "No searches yet.");
  } catch (error) {
    show($("recent-error"), error.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", start);
  $("terminate-button").addEventListener("click", terminate);
  window.addEventListener("hashchange", openFromHash);
  loadProviders();
  loadRecent();
  openFromHash();
});

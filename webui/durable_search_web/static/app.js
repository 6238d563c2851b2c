// Durable Search's single-page app. No framework, no build step, no inline script (strict CSP).
// Every URL is relative, so the page works behind any host, port or path prefix. Progress comes
// from the status route's long-poll (timeoutSeconds + If-None-Match), never from busy polling.
// Third-party pages are shown only in iframes with an empty sandbox; data is set as text only.
// The timeline is SVG built with createElementNS (attributes and text nodes, never markup).
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
    location.hash = searchLink(id);
  } catch (error) {
    show($("form-error"), error.message);
  } finally {
    $("start-button").disabled = false;
  }
}

// -- one search --------------------------------------------------------------------------

// `#/searches/<id>` opens a search (a shareable link); `#/s/<id>` is its older alias.
const SEARCH_HASH = /^#\/(?:searches|s)\/([a-z0-9.-]+)$/;

function searchLink(id) {
  return `#/searches/${encodeURIComponent(id)}`;
}

function openFromHash() {
  const match = location.hash.match(SEARCH_HASH);
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
  $("timeline").replaceChildren();
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
      for (const button of ["terminate-button", "rerun-button", "purge-button"]) $(button).disabled = true;
      return;
    }
    failures = 0;
    show($("search-error"), "");
    state.etag = response.headers.get("ETag");
    const document_ = await response.json();
    render(document_);
    loadTimeline(id, generation);
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
  const running = doc.runtimeStatus === "Running" || doc.runtimeStatus === "Pending";
  $("terminate-button").disabled = !running;
  $("purge-button").disabled = running;
  $("rerun-button").disabled = false;
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
        loadTimeline(id, generation); // its last long-poll, drawn
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
    const reason = encodeURIComponent("terminated from the page");
    await api(`api/searches/${encodeURIComponent(state.id)}/terminate?reason=${reason}`, { method: "POST" });
  } catch (error) {
    show($("search-error"), error.message);
  }
}

async function rerun() {
  if (!state.id) return;
  $("rerun-button").disabled = true;
  try {
    const response = await api(`api/searches/${encodeURIComponent(state.id)}/rerun`, { method: "POST" });
    const { id } = await response.json();
    location.hash = searchLink(id);
    loadRecent();
  } catch (error) {
    show($("search-error"), error.message);
    $("rerun-button").disabled = false;
  }
}

async function purge() {
  if (!state.id) return;
  const id = state.id;
  $("purge-button").disabled = true;
  try {
    await api(`api/searches/${encodeURIComponent(id)}`, { method: "DELETE" });
    state.generation += 1; // stop following it
    history.replaceState(null, "", location.pathname + location.search);
    openFromHash();
    show($("recent-message"), `Purged ${id}.`);
    loadRecent();
  } catch (error) {
    show($("search-error"), error.message);
    $("purge-button").disabled = false;
  }
}

// -- the timeline ------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
const LANE_HEIGHT = 22;
const LABEL_WIDTH = 130;
const CHART_WIDTH = 820;

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  for (const child of children) node.append(child);
  return node;
}

function milliseconds(ms) {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

function describe(segment) {
  const span = `${milliseconds(segment.startMs)} → ${milliseconds(segment.endMs)}`;
  if (segment.kind === "wait") return `waiting for the next ${segment.for}, ${span}`;
  if (segment.kind === "inflight") return `${segment.for} in flight since ${milliseconds(segment.startMs)}`;
  const answer = segment.statusCode ? `answered ${segment.statusCode}` : `failed: ${segment.error || "no answer"}`;
  return `${segment.kind} ${segment.number}, ${answer}, ${span}`;
}

async function loadTimeline(id, generation) {
  let document_;
  try {
    document_ = await (await api(`api/searches/${encodeURIComponent(id)}/timeline`)).json();
  } catch {
    return; // the status view says what is wrong; the timeline is an extra
  }
  if (generation !== state.generation) return;
  drawTimeline(document_);
}

function drawTimeline(doc) {
  const scale = (CHART_WIDTH - LABEL_WIDTH - 10) / Math.max(doc.endMs, 1);
  const x = (ms) => LABEL_WIDTH + ms * scale;
  const height = LANE_HEIGHT * (doc.lanes.length + 1);
  const chart = svg("svg", {
    viewBox: `0 0 ${CHART_WIDTH} ${height}`,
    width: "100%",
    role: "img",
    "aria-label": `Timeline of ${doc.lanes.length} task(s) over ${milliseconds(doc.endMs)}`,
  });
  const details = el("ul", { class: "visually-hidden", id: "timeline-text" });
  doc.lanes.forEach((lane, index) => {
    const top = index * LANE_HEIGHT;
    const label = lane.role === "watcher" ? "watcher" : lane.name;
    const group = svg("g", { class: `lane ${lane.role}`, "data-name": lane.name });
    group.append(svg("text", { x: 0, y: top + 15, class: "lane-label" }, label));
    group.append(svg("line", { x1: LABEL_WIDTH, x2: CHART_WIDTH - 10, y1: top + 11, y2: top + 11, class: "track" }));
    for (const segment of lane.segments) {
      const failed = segment.error || (segment.statusCode && segment.statusCode >= 400);
      const width = Math.max(2, (segment.endMs - segment.startMs) * scale);
      const wait = segment.kind === "wait";
      group.append(svg("rect", {
        x: x(segment.startMs), y: top + (wait ? 8 : 4), width, height: wait ? 6 : 14, rx: 2,
        class: `segment ${segment.kind}${failed ? " failed" : ""}`,
        "data-kind": segment.kind,
        "data-status": segment.statusCode ?? "",
      }, svg("title", {}, `${label}: ${describe(segment)}`)));
    }
    chart.append(group);
    const items = lane.segments.map(describe).join("; ") || "nothing yet";
    details.append(el("li", { text: `${label}: ${items}${lane.truncated ? " (earlier steps not kept)" : ""}` }));
  });
  const axis = height - LANE_HEIGHT + 14;
  chart.append(svg("text", { x: LABEL_WIDTH, y: axis, class: "axis" }, "0"));
  chart.append(svg("text", { x: CHART_WIDTH - 10, y: axis, class: "axis end" }, milliseconds(doc.endMs)));
  $("timeline").replaceChildren(chart, details);
}

// -- recent searches ---------------------------------------------------------------------

async function loadRecent() {
  const status = $("recent-status").value;
  const filter = status ? `&runtimeStatus=${encodeURIComponent(status)}` : "";
  try {
    const { items } = await (await api(`api/searches?top=20${filter}`)).json();
    $("recent-list").replaceChildren(...items.map((s) => el("li", {},
      el("a", { href: searchLink(s.id), text: s.input.query }),
      el("span", { class: `phase ${s.runtimeStatus}`, text: s.runtimeStatus }),
      el("span", { class: "meta", text: new Date(s.createdTime).toLocaleString() }))));
    show($("recent-error"), items.length ? "" : status ? `No ${status} searches.` : "No searches yet.");
  } catch (error) {
    show($("recent-error"), error.message);
  }
}

async function purgeRecent() {
  // Finished searches only: the API never deletes a Pending or Running one.
  const status = $("recent-status").value;
  const finished = status && ["Completed", "Failed", "Terminated"].includes(status) ? status : "Completed,Failed,Terminated";
  $("purge-recent-button").disabled = true;
  try {
    const { instancesDeleted } = await (await api(`api/searches?runtimeStatus=${finished}`, { method: "DELETE" })).json();
    show($("recent-message"), `Purged ${instancesDeleted} finished search(es).`);
  } catch (error) {
    show($("recent-message"), error.message);
  } finally {
    $("purge-recent-button").disabled = false;
    loadRecent();
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", start);
  $("terminate-button").addEventListener("click", terminate);
  $("rerun-button").addEventListener("click", rerun);
  $("purge-button").addEventListener("click", purge);
  $("recent-status").addEventListener("change", loadRecent);
  $("purge-recent-button").addEventListener("click", purgeRecent);
  window.addEventListener("hashchange", openFromHash);
  loadProviders();
  loadRecent();
  openFromHash();
});

// The run page of asyncflow: the list of runs, and one run live (schematic, timeline, logs).
// Served at <prefix>/dashboard with this file at <prefix>/static/dashboard.js: every URL below
// is relative, so any mount prefix works. No build step; dagre (static/dagre.min.js) lays out
// the schematic.
"use strict";

// ---- states ----------------------------------------------------------------------------------
// One colour per family; the CSS classes carry the colours.
const FAMILY = {
  Pending: "pending", Scheduled: "scheduled", Retrying: "scheduled", Resume: "scheduled",
  Paused: "paused", Running: "running", Cancelling: "running", Success: "success",
  Mapped: "success", Looped: "success", Cached: "cached", Skipped: "skipped",
  Failed: "failed", ValidationFailed: "failed", TriggerFailed: "triggerfailed",
  TimedOut: "timedout", Cancelled: "cancelled",
};
const LEGEND = [
  ["pending", "Pending"], ["scheduled", "Scheduled / Retrying"], ["running", "Running"],
  ["success", "Success"], ["cached", "Cached"], ["skipped", "Skipped"], ["paused", "Paused"],
  ["failed", "Failed"], ["triggerfailed", "TriggerFailed"], ["timedout", "TimedOut"],
  ["cancelled", "Cancelled"],
];
// The family a mapped node takes from its children: the most alarming one present.
const WORST = ["failed", "triggerfailed", "timedout", "cancelled", "paused", "running",
  "scheduled", "pending"];
const OK = new Set(["success", "cached", "skipped"]);
const BAD = new Set(["failed", "triggerfailed", "timedout", "cancelled"]);
const FINISHED = new Set(["success", "cached", "skipped", "failed", "triggerfailed", "timedout",
  "cancelled"]);
const familyOf = (type) => FAMILY[type] || "pending";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const number = new Intl.NumberFormat("en");

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  node.append(...children);
  return node;
}

function badge(node, type, text) {
  node.textContent = text || type;
  node.className = "badge " + familyOf(type);
  node.dataset.state = type;
  return node;
}

function clock(seconds) {
  return seconds == null ? "–" : new Date(seconds * 1000).toLocaleTimeString("en-GB");
}

function stamp(seconds) {
  if (seconds == null) return "–";
  const d = new Date(seconds * 1000);
  return d.toLocaleDateString("en-CA") + " " + d.toLocaleTimeString("en-GB");
}

function duration(seconds) {
  if (seconds == null || !isFinite(seconds)) return "–";
  if (seconds < 1) return Math.round(seconds * 1000) + " ms";
  if (seconds < 60) return seconds.toFixed(seconds < 10 ? 2 : 1) + " s";
  const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
  if (m < 60) return m + " min " + String(s).padStart(2, "0") + " s";
  return Math.floor(m / 60) + " h " + String(m % 60).padStart(2, "0") + " min";
}

const iso = (text) => (text ? Date.parse(text) / 1000 : null);

// ---- talking to the server -------------------------------------------------------------------
class Unreachable extends Error {}

async function request(method, url, body) {
  let response;
  try {
    response = await fetch(url, {
      method, headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch (error) {
    throw new Unreachable(String(error));
  }
  let data = null;
  try { data = await response.json(); } catch (error) { data = null; }
  return { ok: response.ok, status: response.status, data };
}

function connection(state, text) {
  const node = $("connection");
  node.dataset.state = state;
  node.textContent = text;
}

function showError(text) { $("error").textContent = text || ""; }

async function act(method, url) {
  try {
    const answer = await request(method, url);
    showError(answer.ok ? "" : (answer.data && answer.data.detail) || "HTTP " + answer.status);
  } catch (error) {
    connection("offline", "Server unreachable: the action was not sent.");
  }
}

// ---- the list of runs ------------------------------------------------------------------------
const list = { before: [], cursor: null, next: null, timer: null, flows: [] };

function runRow(run) {
  const tr = el("tr", { className: "run" });
  tr.dataset.run = run.id;
  const link = el("a", { href: "dashboard?run=" + encodeURIComponent(run.id) }, run.id);
  const state = el("td", {}, badge(el("span"), run.state.type));
  if (run.awaiting_approval) {
    state.append(" ", el("span", { className: "badge paused approval" }, "awaiting approval"));
    tr.dataset.awaiting = "true";
  }
  const started = iso(run.created);
  const ended = run.finished ? iso(run.finished) : Date.now() / 1000;
  tr.append(el("td", {}, link), el("td", {}, run.flow), state, el("td", {}, stamp(started)),
    el("td", {}, duration(started == null ? null : ended - started)));
  return tr;
}

function listQuery() {
  const query = new URLSearchParams({ limit: "20" });
  if ($("filter-flow").value) query.set("flow", $("filter-flow").value);
  if ($("filter-state").value) query.set("state", $("filter-state").value);
  if (list.cursor) query.set("before", list.cursor);
  return "runs?" + query;
}

async function refreshList() {
  clearTimeout(list.timer);
  try {
    const answer = await request("GET", listQuery());
    if (!answer.ok) throw new Error((answer.data && answer.data.detail) || "HTTP " + answer.status);
    const page = answer.data;  // {"runs": [summary, ...], "next": id|null}, newest first
    list.next = page.next;
    $("runs").replaceChildren(...page.runs.map(runRow));
    $("runs-empty").hidden = page.runs.length > 0;
    $("older").disabled = !page.next;
    $("newer").disabled = list.before.length === 0;
    connection("online", "connected");
    showError("");
  } catch (error) {
    if (error instanceof Unreachable) connection("offline", "Server unreachable; retrying…");
    else showError(String(error.message));
  }
  list.timer = setTimeout(refreshList, 2000);  // a failed fetch never stops the polling
}

function parameterInputs(flow) {
  const box = $("start-parameters");
  box.replaceChildren();
  for (const p of (flow && flow.parameters) || []) {
    const input = el("input", { name: p.name, required: p.required });
    input.dataset.parameter = p.name;
    if (!p.required) input.placeholder = JSON.stringify(p.default);
    box.append(el("label", {}, p.name + (p.required ? " (required) " : " "), input));
  }
}

function parameterValue(text) {
  try { return JSON.parse(text); } catch (error) { return text; }  // JSON when it parses
}

async function loadFlows() {
  try {
    const answer = await request("GET", "flows");
    list.flows = answer.ok ? answer.data : [];
  } catch (error) {
    connection("offline", "Server unreachable; retrying…");
    setTimeout(loadFlows, 2000);
    return;
  }
  const names = list.flows.map((f) => f.name);
  $("start-flow").replaceChildren(...names.map((n) => el("option", { value: n }, n)));
  $("filter-flow").append(...names.map((n) => el("option", { value: n }, n)));
  parameterInputs(list.flows[0]);
}

async function startRun(event) {
  event.preventDefault();
  const flow = $("start-flow").value;
  const parameters = {};
  for (const input of $("start-parameters").querySelectorAll("input")) {
    if (input.value !== "") parameters[input.name] = parameterValue(input.value);
  }
  try {
    const answer = await request("POST", "flows/" + encodeURIComponent(flow) + "/runs",
      { parameters });
    if (answer.ok) location.href = "dashboard?run=" + encodeURIComponent(answer.data.id);
    else showError((answer.data && answer.data.detail) || "HTTP " + answer.status);
  } catch (error) {
    connection("offline", "Server unreachable: the run was not started.");
  }
}

function showList() {
  $("runs-view").hidden = false;
  $("start-flow").onchange = () =>
    parameterInputs(list.flows.find((f) => f.name === $("start-flow").value));
  $("start-form").onsubmit = startRun;
  const refilter = () => { list.before = []; list.cursor = null; refreshList(); };
  $("filter-flow").onchange = refilter;
  $("filter-state").onchange = refilter;
  $("older").onclick = () => { list.before.push(list.cursor); list.cursor = list.next; refreshList(); };
  $("newer").onclick = () => { list.cursor = list.before.pop() || null; refreshList(); };
  loadFlows();
  refreshList();
}

// ---- one run ---------------------------------------------------------------------------------
const run = {
  id: null, flow: null, tasks: new Map(), order: [], logs: new Map(), created: null,
  finished: null, stream: null, live: false, ended: false, lastSeq: 0, selected: null,
  childPage: 0, dirty: new Set(), frame: 0, retry: 1000, refetch: 0, graphDrawn: false,
  loaded: false,
};

function taskOf(key) {
  let t = run.tasks.get(key);
  if (!t) {
    t = { key, state: { type: "Pending" }, start: null, end: null, runs: 0, traceback: null,
      mapped: false, children: new Map() };
    run.tasks.set(key, t);
    run.order.push(key);
  }
  return t;
}

function childOf(t, index) {
  let c = t.children.get(index);
  if (!c) {
    c = { index, state: { type: "Pending" }, start: null, end: null, runs: 0, traceback: null };
    t.children.set(index, c);
    t.mapped = true;
  }
  return c;
}

function applySnapshot(detail) {
  run.loaded = true;
  run.created = iso(detail.created);
  run.finished = iso(detail.finished);
  run.lastSeq = detail.last_seq || 0;
  for (const [key, state] of Object.entries(detail.tasks)) {
    const t = taskOf(key);
    t.state = state;
    // A finished map lists its children in its state: enough when no activity was kept.
    // (A list too long for the JSON caps comes as a truncated marker: the activity has them.)
    if (Array.isArray(state.map_states)) {
      state.map_states.forEach((child, index) => { childOf(t, index).state = child; });
    }
  }
  for (const [key, activity] of Object.entries(detail.task_runs || {})) {
    const t = taskOf(key);
    Object.assign(t, { start: activity.start, end: activity.end, runs: activity.runs,
      traceback: activity.traceback });
    for (const child of activity.children || []) {
      Object.assign(childOf(t, child.map_index), { state: child.state, start: child.start,
        end: child.end, runs: child.runs, traceback: child.traceback });
    }
  }
  for (const entry of detail.logs || []) run.logs.set(entry.n, entry);
  run.dirty.add("#logs");
  notices(detail);
  flowState(detail.state, detail.awaiting_approval);
  for (const key of run.tasks.keys()) run.dirty.add(key);
  schedule();
}

function notices(detail) {
  const box = $("notices");
  box.replaceChildren();
  if (detail.dropped_events > 0) {
    box.append(el("p", { id: "history-dropped" },
      "The first " + number.format(detail.dropped_events) + " events of this run were " +
      "dropped from its history (size limit); states, times and children shown here come " +
      "from the run's own records."));
  }
  if (detail.dropped_logs > 0) {
    box.append(el("p", { id: "logs-dropped" }, number.format(detail.dropped_logs) +
      " older log records were dropped; the last ones are shown."));
  }
}

function flowState(state, awaiting) {
  badge($("run-state"), state.type);
  run.ended = FINISHED.has(familyOf(state.type));
  $("approval").hidden = !awaiting;
  $("cancel").hidden = run.ended;
  $("run-started").textContent = stamp(run.created);
  const end = run.finished || (run.ended ? null : Date.now() / 1000);
  $("run-duration").textContent = run.created && end ? duration(end - run.created) : "–";
}

function onEvent(message) {
  const event = JSON.parse(message.data);
  run.lastSeq = event.seq;
  if (event.task_name === null) {
    if (FINISHED.has(familyOf(event.new_state.type))) run.finished = event.timestamp;
    flowState(event.new_state, !$("approval").hidden);
    return;
  }
  const key = keyOf(event);
  const t = taskOf(key);
  const target = event.map_index === null ? t : childOf(t, event.map_index);
  const state = event.new_state;
  target.state = state;
  if (state.type === "Running") {
    target.runs += 1;
    if (target.start == null) target.start = event.timestamp;
  }
  target.end = FINISHED.has(familyOf(state.type)) ? event.timestamp : null;
  if (BAD.has(familyOf(state.type)) || state.type === "Paused" || state.type === "Resume") {
    refetchSoon();  // tracebacks and the approval flag come with the run's detail
  }
  run.dirty.add(key);
  schedule();
}

function keyOf(event) {
  // Tasks are keyed by name, or by slug where names repeat (task_run_id is "<run>/<slug>").
  if (run.tasks.has(event.task_name)) return event.task_name;
  const slug = event.task_run_id.slice(event.run_id.length + 1).replace(/\[\d+\]$/, "");
  return run.tasks.has(slug) ? slug : event.task_name;
}

function onLog(message) {
  const entry = JSON.parse(message.data);
  run.logs.set(entry.n, entry);
  if (run.logs.size > 5000) run.logs.delete(run.logs.keys().next().value);
  run.dirty.add("#logs");
  schedule();
}

function refetchSoon() {
  if (run.refetch) return;
  run.refetch = setTimeout(async () => {
    run.refetch = 0;
    try {
      const answer = await request("GET", "runs/" + encodeURIComponent(run.id));
      if (answer.ok) mergeDetail(answer.data);
    } catch (error) { /* the stream's own error handling reports the server */ }
  }, 300);
}

function mergeDetail(detail) {
  // Only what events do not carry: tracebacks, the approval flag, the notices, and the log
  // records made after the stream ended.
  $("approval").hidden = !detail.awaiting_approval;
  for (const entry of detail.logs || []) run.logs.set(entry.n, entry);
  run.dirty.add("#logs");
  for (const [key, activity] of Object.entries(detail.task_runs || {})) {
    const t = taskOf(key);
    t.traceback = activity.traceback;
    for (const child of activity.children || []) {
      childOf(t, child.map_index).traceback = child.traceback;
    }
    run.dirty.add(key);
  }
  notices(detail);
  schedule();
}

// Redraw what changed at most once a frame (a 2,000-child map sends thousands of events).
function schedule() {
  if (!run.frame) run.frame = requestAnimationFrame(render);
}

function render() {
  run.frame = 0;
  if (!run.loaded) return;  // the clock's tick may come before the run's first detail
  if (!run.graphDrawn) drawGraph();
  for (const key of run.dirty) if (key !== "#logs") paintNode(key);
  drawTimeline();
  if (run.dirty.has("#logs")) drawLogs($("logs"), [...run.logs.values()].slice(-300));
  // The details are redrawn only when their task changed (a redraw would take the focus away).
  const shown = run.selected;
  if (shown && (run.dirty.has(shown.key) || run.dirty.has("#logs") || run.dirty.has("#page"))) {
    showDetails(shown.key, shown.index, false);
  }
  run.dirty.clear();
  const end = run.finished || (run.ended ? null : Date.now() / 1000);
  $("run-duration").textContent = run.created && end ? duration(end - run.created) : "–";
}

// ---- the schematic ---------------------------------------------------------------------------
function nodeSize(key, mapped) {
  const width = Math.min(240, Math.max(mapped ? 230 : 180, 16 + key.length * 7.4));
  return { width, height: mapped ? 58 : 42 };
}

function drawGraph() {
  run.graphDrawn = true;
  const svg = $("graph");
  svg.replaceChildren();
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 14, ranksep: 48, marginx: 12, marginy: 12 });
  g.setDefaultEdgeLabel(() => ({}));
  const edges = run.flow.edges;
  const mappedTargets = new Set(edges.filter((e) => e.mapped).map((e) => e.to));
  for (const key of run.order) {
    const t = run.tasks.get(key);
    if (mappedTargets.has(key)) t.mapped = true;
    g.setNode(key, nodeSize(key, t.mapped));
  }
  for (const e of edges) {
    if (g.hasNode(e.from) && g.hasNode(e.to)) g.setEdge(e.from, e.to, { mapped: e.mapped });
  }
  dagre.layout(g);
  const size = g.graph();
  svg.setAttribute("width", Math.ceil(size.width));
  svg.setAttribute("height", Math.ceil(size.height));
  svg.setAttribute("viewBox", "0 0 " + Math.ceil(size.width) + " " + Math.ceil(size.height));
  const defs = document.createElementNS(SVG, "defs");
  defs.innerHTML = '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7"' +
    ' markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#666"/></marker>';
  svg.append(defs);
  for (const e of g.edges()) {
    const data = g.edge(e);
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", "M" + data.points.map((p) => p.x + "," + p.y).join("L"));
    path.setAttribute("class", data.mapped ? "edge mapped" : "edge");
    path.setAttribute("marker-end", "url(#arrow)");
    svg.append(path);
  }
  for (const key of g.nodes()) {
    const box = g.node(key);
    const node = document.createElementNS(SVG, "g");
    node.setAttribute("class", "node");
    node.setAttribute("tabindex", "0");
    node.setAttribute("role", "button");
    node.dataset.task = key;
    node.setAttribute("transform",
      "translate(" + (box.x - box.width / 2) + "," + (box.y - box.height / 2) + ")");
    const t = run.tasks.get(key);
    if (t.mapped) {  // a stack of cards: one node stands for all the children
      const back = document.createElementNS(SVG, "rect");
      Object.entries({ x: 4, y: -4, width: box.width, height: box.height, rx: 6,
        class: "mapped-back" }).forEach(([k, v]) => back.setAttribute(k, v));
      node.append(back);
    }
    const rect = document.createElementNS(SVG, "rect");
    Object.entries({ width: box.width, height: box.height, rx: 6 })
      .forEach(([k, v]) => rect.setAttribute(k, v));
    const title = document.createElementNS(SVG, "title");
    const name = text(key.length > 30 ? key.slice(0, 29) + "…" : key, 8, 16, "name");
    const state = text("", 8, 32, "state");
    node.append(rect, title, name, state);
    if (t.mapped) node.append(text("", 8, 48, "summary"));
    const open = () => select(key, null);
    node.addEventListener("click", open);
    node.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); open(); }
    });
    svg.append(node);
    paintNode(key);
  }
}

function text(content, x, y, cls) {
  const node = document.createElementNS(SVG, "text");
  node.setAttribute("x", x);
  node.setAttribute("y", y);
  node.setAttribute("class", cls);
  node.textContent = content;
  return node;
}

function childCounts(t) {
  const counts = { ok: 0, bad: 0, running: 0, other: {} };
  for (const c of t.children.values()) {
    const family = familyOf(c.state.type);
    if (OK.has(family)) counts.ok += 1;
    else if (BAD.has(family)) counts.bad += 1;
    else if (family === "running") counts.running += 1;
    else counts.other[family] = (counts.other[family] || 0) + 1;
  }
  return counts;
}

function summaryText(t) {
  const c = childCounts(t);
  let out = number.format(c.ok) + " \u2714 \u00b7 " + number.format(c.bad) + " \u2717 \u00b7 " +
    number.format(c.running) + " running";
  for (const family of ["paused", "scheduled"]) {
    if (c.other[family]) out += " \u00b7 " + number.format(c.other[family]) + " " + family;
  }
  return out;
}

function nodeFamily(t) {
  if (!t.mapped || t.children.size === 0) return familyOf(t.state.type);
  const present = new Set([...t.children.values()].map((c) => familyOf(c.state.type)));
  if (FINISHED.has(familyOf(t.state.type)) || familyOf(t.state.type) === "running") {
    for (const family of WORST) if (present.has(family)) return family;
  }
  return familyOf(t.state.type);
}

function nextAttempt(state) {
  return state.start_time ? new Date(state.start_time).toLocaleTimeString("en-GB") : null;
}

function stateLine(state) {
  const when = nextAttempt(state);
  if (when && state.type === "Paused") return "Paused \u00b7 until " + when;  // then resumes
  const next = (state.type === "Retrying" || state.type === "Scheduled") && when;
  return next ? state.type + " \u00b7 next " + next : state.type;
}

function paintNode(key) {
  const node = $("graph").querySelector('g.node[data-task="' + CSS.escape(key) + '"]');
  if (!node) return;
  const t = run.tasks.get(key);
  const family = nodeFamily(t);
  node.dataset.state = t.state.type;
  node.dataset.family = family;
  node.querySelector("rect:not(.mapped-back)").setAttribute("class", family);
  node.querySelector("rect:not(.mapped-back)").style.fill = "var(--" + family + ")";
  node.querySelector(".state").textContent = stateLine(t.state);
  let label = key + ": " + t.state.type;
  const summary = node.querySelector(".summary");
  if (summary) {
    summary.textContent = summaryText(t);
    label += ", children " + summary.textContent;
  }
  node.querySelector("title").textContent = label;
  node.setAttribute("aria-label", label);
}

// ---- details of one task or child -------------------------------------------------------------
function select(key, index) {
  run.selected = { key, index };
  run.childPage = 0;
  for (const node of $("graph").querySelectorAll("g.node.selected")) {
    node.classList.remove("selected");
  }
  const node = $("graph").querySelector('g.node[data-task="' + CSS.escape(key) + '"]');
  if (node) node.classList.add("selected");
  showDetails(key, index, true);
}

function fact(dl, term, value) {
  dl.append(el("dt", {}, term), el("dd", {}, value));
}

function showDetails(key, index, focus) {
  const t = run.tasks.get(key);
  if (!t) return;
  const one = index === null ? t : t.children.get(index);
  if (!one) return;
  const panel = $("details");
  panel.hidden = false;
  panel.dataset.task = key;
  panel.dataset.mapIndex = index === null ? "" : String(index);
  $("details-heading").textContent = index === null ? key : key + "[" + index + "]";
  const dl = $("details-facts");
  dl.replaceChildren();
  fact(dl, "State", badge(el("span", { id: "details-state" }), one.state.type));
  const next = nextAttempt(one.state);
  if (next) fact(dl, one.state.type === "Paused" ? "Resumes at" : "Next attempt", next);
  const when = index === null ? span(t) : one;
  fact(dl, "Start", stamp(when.start));
  fact(dl, "End", stamp(when.end));
  const end = when.end == null && when.start != null && !run.ended ? Date.now() / 1000 : when.end;
  fact(dl, "Duration", when.start == null ? "–" : duration(end - when.start));
  fact(dl, "Runs", String(one.runs));
  if (t.mapped && index === null) fact(dl, "Children", summaryText(t));
  $("details-message").textContent = one.state.message || "";
  const actions = $("details-actions");
  actions.replaceChildren();
  if (one.state.type === "Paused" && !run.ended) {
    const button = el("button", { type: "button", className: "approve" }, "Approve");
    button.onclick = () => act("POST", "runs/" + encodeURIComponent(run.id) + "/tasks/" +
      encodeURIComponent(key) + "/resume" + (index === null ? "" : "?map_index=" + index));
    actions.append(button);
  }
  const traceback = $("details-traceback");
  traceback.hidden = !one.traceback;
  traceback.querySelector("pre").textContent = one.traceback || "";
  if (one.traceback && focus) traceback.open = true;
  drawChildren(t, index);
  drawLogs($("details-logs"), [...run.logs.values()].filter(
    (e) => e.task === key && (e.map_index ?? null) === index));
  if (focus) $("details-close").focus();
}

const PAGE = 100;

function drawChildren(t, index) {
  const box = $("children");
  box.hidden = !(t.mapped && index === null);
  if (box.hidden) return;
  const filter = $("children-filter");
  const wanted = filter.value;
  const families = new Map();
  for (const c of t.children.values()) {
    const f = familyOf(c.state.type);
    families.set(f, (families.get(f) || 0) + 1);
  }
  filter.replaceChildren(el("option", { value: "" }, "all (" + number.format(t.children.size) + ")"),
    ...[...families].map(([f, n]) => el("option", { value: f }, f + " (" + number.format(n) + ")")));
  filter.value = families.has(wanted) ? wanted : "";
  const shown = [...t.children.values()]
    .filter((c) => !filter.value || familyOf(c.state.type) === filter.value)
    .sort((a, b) => a.index - b.index);
  const pages = Math.max(1, Math.ceil(shown.length / PAGE));
  run.childPage = Math.min(run.childPage, pages - 1);
  const rows = shown.slice(run.childPage * PAGE, (run.childPage + 1) * PAGE).map((c) => {
    const open = el("button", { type: "button", className: "child" }, String(c.index));
    open.setAttribute("aria-label", "child " + c.index + ": " + c.state.type);
    open.onclick = () => select(t.key, c.index);
    const tr = el("tr", {}, el("td", {}, open), el("td", {}, badge(el("span"), c.state.type)),
      el("td", {}, c.start == null ? "–" : duration((c.end ?? Date.now() / 1000) - c.start)),
      el("td", {}, String(c.runs)), el("td", { className: "message" }, c.state.message || ""));
    tr.dataset.child = String(c.index);
    tr.dataset.state = c.state.type;
    return tr;
  });
  $("children-rows").replaceChildren(...rows);
  $("children-page").textContent = "page " + (run.childPage + 1) + " of " + pages;
  $("children-prev").disabled = run.childPage === 0;
  $("children-next").disabled = run.childPage >= pages - 1;
}

function drawLogs(list, entries) {
  const items = entries.map((e) => {
    const who = e.task == null ? "flow" : e.task + (e.map_index == null ? "" : "[" + e.map_index + "]");
    const li = el("li", { className: e.level, value: e.n },
      clock(e.time) + " " + e.level + " " + who + ": " + e.message);
    return li;
  });
  list.replaceChildren(...items);
  if (!items.length) list.append(el("li", { className: "empty" }, "no log records"));
}

// ---- the timeline ----------------------------------------------------------------------------
// When a task ran: a mapped task from its first child's start to its last child's end (its own
// state turns Mapped as soon as it has made its children, as in Prefect 1.x).
function span(t) {
  if (!t.mapped || t.children.size === 0) return { start: t.start, end: t.end };
  let start = t.start, end = null, open = false;
  for (const c of t.children.values()) {
    if (c.start != null && (start == null || c.start < start)) start = c.start;
    if (c.end == null) open = true;
    else if (end == null || c.end > end) end = c.end;
  }
  return { start, end: open ? null : end };
}

function drawTimeline() {
  const times = [...run.tasks.values()].map(span).flatMap((s) => [s.start, s.end])
    .filter((x) => x != null);
  const now = run.ended ? null : Date.now() / 1000;
  const origin = Math.min(...times, run.created || Infinity);
  const last = Math.max(...times, now || -Infinity, run.finished || -Infinity);
  const width = Math.max(last - origin, 1e-3);
  const rows = run.order.map((key) => {
    const t = run.tasks.get(key);
    const { start, end: stop } = span(t);
    const family = nodeFamily(t);
    const open = el("button", { type: "button", className: "task" }, key);
    open.onclick = () => select(key, null);
    const track = el("div", { className: "track" });
    if (start != null) {
      const end = stop ?? now ?? start;
      const bar = el("div", { className: "bar " + family });
      bar.style.left = ((start - origin) / width) * 100 + "%";
      bar.style.width = Math.max(((end - start) / width) * 100, 0.2) + "%";
      bar.title = key + ": " + duration(end - start);
      track.append(bar);
    }
    const tr = el("tr", {}, el("td", {}, open),
      el("td", {}, badge(el("span"), t.state.type)), el("td", {}, clock(start)),
      el("td", {}, clock(stop)),
      el("td", {}, start == null ? "–" : duration((stop ?? now ?? start) - start)),
      el("td", {}, String(t.runs)), el("td", { className: "bar-cell" }, track));
    tr.dataset.task = key;
    return tr;
  });
  $("timeline").replaceChildren(...rows);
}

// ---- following the run -----------------------------------------------------------------------
async function follow() {
  const url = "runs/" + encodeURIComponent(run.id);
  let detail;
  try {
    const answer = await request("GET", url);
    if (answer.status === 404) return unknownRun(answer.data);
    if (!answer.ok) throw new Unreachable("HTTP " + answer.status);
    detail = answer.data;
    if (run.flow === null) {  // the graph: the flow's tasks and edges
      const flows = await request("GET", "flows");
      run.flow = (flows.ok && flows.data.find((f) => f.name === detail.flow)) ||
        { tasks: [], edges: [] };
    }
  } catch (error) {
    return retryLater();
  }
  $("flow").textContent = detail.flow;
  for (const key of run.flow.tasks) taskOf(key);
  applySnapshot(detail);
  $("cancel").onclick = () => act("POST", url + "/cancel");
  connection("online", "connected");
  run.retry = 1000;
  if (run.ended && detail.finished) return ended();
  // Resume right after what the detail reflects; logs come again and are told apart by `n`.
  const source = new EventSource(url + "/events?logs=true&last_event_id=" + run.lastSeq);
  run.stream = source;
  source.onopen = () => { $("stream").textContent = "live"; connection("online", "connected"); };
  source.addEventListener("state", onEvent);
  source.addEventListener("log", onLog);
  source.addEventListener("end", (message) => {
    source.close();
    const summary = JSON.parse(message.data);
    run.finished = iso(summary.finished);
    flowState(summary.state, summary.awaiting_approval);
    refetchSoon();
    ended();
  });
  source.onerror = () => {
    if (run.ended && source.readyState === EventSource.CLOSED) return;
    source.close();  // follow() again: a fresh detail, then the stream from where it stands
    retryLater();
  };
}

function retryLater() {
  $("stream").textContent = "reconnecting";
  connection("offline", "Server unreachable; retrying…");
  setTimeout(follow, run.retry);
  run.retry = Math.min(run.retry * 2, 8000);
}

function ended() {
  $("stream").textContent = "ended";
  $("cancel").hidden = true;
  document.body.dataset.stream = "ended";
  schedule();
}

function unknownRun(data) {
  $("stream").textContent = "unknown run";
  $("cancel").hidden = true;  // nothing to act on: no live buttons
  $("approval").hidden = true;
  showError((data && data.detail) || "unknown run");
  connection("online", "connected");
  document.body.dataset.stream = "unknown";
}

function showRun(id) {
  run.id = id;
  $("run-view").hidden = false;
  $("title").textContent = "run " + id;
  document.title = "asyncflow run " + id;
  const legend = $("legend");
  legend.replaceChildren(...LEGEND.map(([family, label]) =>
    el("li", {}, el("span", { className: "badge " + family }, "\u00a0"), " " + label)));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !$("details").hidden) $("details-close").click();
  });
  $("details-close").onclick = () => {
    $("details").hidden = true;
    const key = run.selected && run.selected.key;
    run.selected = null;
    const node = key && $("graph").querySelector('g.node[data-task="' + CSS.escape(key) + '"]');
    if (node) { node.classList.remove("selected"); node.focus(); }
  };
  const page = (change) => { run.childPage = change(run.childPage); run.dirty.add("#page"); schedule(); };
  $("children-filter").onchange = () => page(() => 0);
  $("children-prev").onclick = () => page((n) => n - 1);
  $("children-next").onclick = () => page((n) => n + 1);
  follow();
  setInterval(() => { if (!run.ended) schedule(); }, 1000);  // running clocks tick
}

// A fault of the page itself is said, not left in the console.
window.addEventListener("error", (event) => showError("page error: " + event.message));
window.addEventListener("unhandledrejection", (event) =>
  showError("page error: " + (event.reason && event.reason.message || event.reason)));

const wanted = new URLSearchParams(location.search).get("run");
if (wanted) showRun(wanted); else showList();

// streamplane dashboard: follows /dashboard/events (server-sent events) and draws the page.
// The server folds the control log; the page only merges what it is sent: a snapshot, then
// deltas whose values replace the ones it holds (null: gone). It never polls.
"use strict";

(() => {
  const FEED_SHOWN = 60;
  const model = {
    seq: 0, epoch: 0, leader: null, maintenance: false, counts: {}, health: null,
    instances: new Map(), streams: new Map(), alerts: new Map(),
    feed: [], timeline: new Map(), bucketMs: 5000, connected: false, problem: null,
  };
  const $ = (id) => document.getElementById(id);

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.appendChild(typeof child === "string" || typeof child === "number"
        ? document.createTextNode(String(child)) : child);
    }
    return node;
  }

  function replaceAll(map, values) {
    map.clear();
    for (const [k, v] of Object.entries(values || {})) map.set(k, v);
  }

  function merge(map, values) {
    for (const [k, v] of Object.entries(values || {})) {
      if (v === null) map.delete(k); else map.set(k, v);
    }
  }

  // --- folding the messages --------------------------------------------------------------

  function header(msg) {
    for (const k of ["seq", "epoch", "leader", "maintenance", "counts"]) model[k] = msg[k];
    if (msg.health) model.health = msg.health;
  }

  function onSnapshot(msg) {
    header(msg);
    replaceAll(model.instances, msg.instances);
    replaceAll(model.streams, msg.streams);
    replaceAll(model.alerts, msg.alerts);
    model.feed = msg.feed.slice();
    model.timeline = new Map(msg.timeline.map((b) => [b.t, b]));
    model.bucketMs = msg.bucket_ms;
    model.connected = msg.connected;
    model.problem = msg.problem;
  }

  function onDelta(msg) {
    header(msg);
    merge(model.instances, msg.instances);
    merge(model.streams, msg.streams);
    model.feed.push(...msg.events);
    if (model.feed.length > 500) model.feed.splice(0, model.feed.length - 500);
    for (const b of msg.timeline) model.timeline.set(b.t, b);
    if (msg.events.length) freshSeq = Math.min(freshSeq, msg.events[0].seq);
  }

  const handlers = {
    snapshot: onSnapshot,
    delta: onDelta,
    alerts: (msg) => merge(model.alerts, msg.alerts),
    status: (msg) => { model.connected = msg.connected; model.problem = msg.problem; },
    bye: (msg) => { model.connected = false; model.problem = `stream ended (${msg.why}); reconnecting`; },
  };
  let freshSeq = Infinity;

  // --- drawing ---------------------------------------------------------------------------

  function ago(iso) {
    if (!iso) return "never";
    const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    return s < 120 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
  }

  function clock(iso) {
    return iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : "";
  }

  function drawTop() {
    const conn = $("connection");
    const state = model.connected ? "live" : (source.readyState === 1 ? "down" : "reconnecting");
    conn.dataset.state = state;
    conn.textContent = { live: "live", down: "log unreachable", reconnecting: "reconnecting…" }[state];
    const health = $("health");
    if (model.health) {
      health.dataset.status = model.health.status;
      health.textContent = `health: ${model.health.status}`;
      health.title = `load balance ${model.health.load_balance_score}, consistency ` +
        `${model.health.consistency_score}, performance ${model.health.performance_score}`;
    }
    const leader = model.leader ? `leader ${model.leader}` : "no leader yet";
    const maint = model.maintenance ? " · MAINTENANCE MODE: failovers frozen" : "";
    $("summary").textContent = `${leader} · epoch ${model.epoch} · log seq ${model.seq}${maint}`;
    const problem = $("problem");
    problem.hidden = !model.problem;
    problem.textContent = model.problem || "";
  }

  function streamsByServer() {
    const held = new Map();
    const add = (server, sid, cls) => {
      if (!held.has(server)) held.set(server, []);
      held.get(server).push([sid, cls]);
    };
    for (const [sid, s] of model.streams) {
      if (s.server) add(s.server, sid, s.status === "running" ? "running" : "");
      if (s.migration) add(s.migration.to, sid, "incoming");
    }
    return held;
  }

  function instanceCard(id, inst, chips) {
    const pct = inst.capacity ? Math.round((100 * inst.load) / inst.capacity) : (inst.load ? 100 : 0);
    const fill = pct > 100 ? "over" : pct >= 85 ? "high" : "";
    const shown = chips.slice(0, 40);
    return h("article", { class: "instance", "data-instance": id, "data-status": inst.status },
      h("header", {},
        h("span", { class: "name" }, id),
        h("span", {},
          inst.draining ? h("span", { class: "badge draining" }, "draining") : null, " ",
          h("span", { class: "badge", "data-status": inst.status }, inst.status))),
      h("div", { class: "bar", title: `load ${inst.load} of ${inst.capacity}` },
        h("div", { class: `fill ${fill}`, style: `width:${Math.min(100, pct)}%` })),
      h("p", { class: "figures" },
        h("span", { "data-field": "streams" }, inst.streams), " streams · load ",
        h("span", { "data-field": "load" }, inst.load), ` / ${inst.capacity}`,
        ` · cpu ${Math.round(inst.cpu)}% · ${Math.round(inst.memory_mb)} MB · errors ${(100 * inst.error_rate).toFixed(1)}%`),
      h("p", { class: "heard" }, `last heard ${ago(inst.last_heartbeat)}`,
        inst.zone ? ` · zone ${inst.zone}` : "", inst.failures ? ` · failed ${inst.failures}×` : ""),
      h("div", { class: "chips" },
        shown.map(([sid, cls]) => h("span", { class: `chip ${cls}`, "data-stream": sid }, sid)),
        chips.length > shown.length ? h("span", { class: "chip" }, `+${chips.length - shown.length} more`) : null));
  }

  function drawInstances() {
    const box = $("instances");
    const held = streamsByServer();
    const ids = [...model.instances.keys()].sort();
    box.replaceChildren(...(ids.length
      ? ids.map((id) => instanceCard(id, model.instances.get(id), (held.get(id) || []).sort()))
      : [h("p", { class: "empty" }, "No instance has joined yet.")]));
  }

  function drawStreams() {
    Charts.statusBar($("status-bar"), model.counts);
    $("status-legend").replaceChildren(...Charts.ORDER.map((s) =>
      h("li", { "data-count": s },
        h("span", { class: "swatch", style: `background:${Charts.COLORS[s]}` }),
        `${s} `, h("strong", {}, model.counts[s] || 0))));
  }

  function drawAlerts() {
    const list = [...model.alerts.values()].sort((a, b) => (a.key < b.key ? -1 : 1));
    $("alerts").replaceChildren(...(list.length ? list.map((a) =>
      h("li", { "data-alert": a.key },
        h("span", { class: `sev ${a.severity}` }, a.severity), " ", a.summary,
        h("div", { class: "action" }, `${a.action} (since ${clock(a.at)}, log seq ${a.seq})`)))
      : [h("li", { class: "empty" }, "No alert is firing.")]));
  }

  function drawMigrations() {
    const moving = [...model.streams].filter(([, s]) => s.migration).sort();
    const rows = [];
    for (const [sid, s] of moving) {
      rows.push(h("tr", { "data-migration": sid }, h("td", {}, sid), h("td", {}, s.server || "–"),
        h("td", {}, s.migration.to), h("td", {}, s.migration.reason), h("td", {}, clock(s.migration.started))));
    }
    $("migrations").replaceChildren(...(rows.length ? rows
      : [h("tr", { class: "empty" }, h("td", { colspan: 5 }, "None."))]));
  }

  function drawFeed() {
    const bad = /Failed|Suspected|Rejected|Aborted|Maintenance|Divergence/;
    const recent = model.feed.slice(-FEED_SHOWN).reverse();
    $("feed").replaceChildren(...recent.map((e) =>
      h("li", { class: `${bad.test(e.type) ? "bad" : ""} ${e.seq >= freshSeq ? "new" : ""}`,
        "data-type": e.type, title: `${e.type} (${e.reason}) at ${e.time}` },
      h("span", { class: "when" }, clock(e.time)), h("span", { class: "seq" }, `#${e.seq}`),
      h("span", { class: "text" }, e.text))));
    freshSeq = Infinity;
  }

  function drawTimeline() {
    const buckets = [...model.timeline.values()].sort((a, b) => a.t - b.t);
    Charts.timeline($("timeline"), buckets, model.bucketMs, Date.now());
    const items = [...Charts.ORDER.map((s) => [s, Charts.COLORS[s]]),
      ["failover", Charts.COLORS.failed], ["rebalance", Charts.COLORS.assigned], ["moves", "#c3c9d4"]];
    $("timeline-legend").replaceChildren(...items.map(([name, color]) =>
      h("li", {}, h("span", { class: "swatch", style: `background:${color}` }), name)));
    drawChurn(buckets);
  }

  // Moves by reason and stream-seconds without a running owner, summed over the chart's
  // buckets (each bucket counts its own: control_plane/api/dashboard/timeline.py).
  function drawChurn(buckets) {
    let moves = 0, down = 0;
    const reasons = new Map();
    for (const b of buckets) {
      moves += b.moves || 0;
      down += b.down_s || 0;
      for (const [why, n] of Object.entries(b.reasons || {})) reasons.set(why, (reasons.get(why) || 0) + n);
    }
    const churn = $("churn");
    churn.querySelector('[data-field="moves"]').textContent = String(moves);
    churn.querySelector('[data-field="down"]').textContent = down.toFixed(1);
    const list = [...reasons].sort((a, b) => b[1] - a[1]).map(([why, n]) => `${why} ${n}`);
    churn.querySelector('[data-field="reasons"]').textContent = list.length ? list.join(", ") : "none";
  }

  function draw() {
    pending = false;
    drawTop();
    drawInstances();
    drawStreams();
    drawAlerts();
    drawMigrations();
    drawTimeline();
    drawFeed();
    document.body.dataset.seq = String(model.seq);
  }

  let pending = false;
  function schedule() {
    if (!pending) { pending = true; requestAnimationFrame(draw); }
  }

  // --- the stream ------------------------------------------------------------------------

  // An EventSource cannot send a header: a token given as #token=... in the page's URL
  // goes into a cookie that only the dashboard's GETs accept (the API never takes a cookie
  // for a write), and leaves the address bar (a fragment never reaches the server).
  const given = new URLSearchParams(location.hash.slice(1)).get("token");
  if (given) {
    document.cookie = `streamplane_token=${encodeURIComponent(given)}; path=/; SameSite=Strict`;
    history.replaceState(null, "", location.pathname + location.search);
  }
  const source = new EventSource("/dashboard/events");
  source.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    const handle = handlers[msg.kind];
    if (handle) { handle(msg); schedule(); }
  };
  source.onopen = schedule;
  source.onerror = () => { model.connected = false; schedule(); };
  // ages ("last heard 3 s ago") and the timeline's right edge move with the clock
  setInterval(schedule, 1000);
})();

// streamplane dashboard: the two charts, drawn as SVG by hand (no chart library).
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  // one colour per stream status, as in dashboard.css
  const COLORS = {
    running: "#2e9e5b", assigned: "#3a7bd5", migrating: "#8a5cd1",
    unassigned: "#e08a1e", failed: "#d64545",
  };
  const ORDER = ["running", "assigned", "migrating", "unassigned", "failed"];

  function svg(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  // A horizontal bar split by stream status, widths in proportion to the counts.
  function statusBar(target, counts) {
    clear(target);
    const total = ORDER.reduce((sum, s) => sum + (counts[s] || 0), 0);
    let x = 0;
    for (const status of ORDER) {
      const n = counts[status] || 0;
      if (!n) continue;
      const w = (400 * n) / total;
      const rect = svg("rect", { x, y: 0, width: w, height: 28, fill: COLORS[status] });
      rect.appendChild(svg("title", {}, `${status}: ${n}`));
      target.appendChild(rect);
      x += w;
    }
  }

  function timeLabel(ms) {
    return new Date(ms).toLocaleTimeString([], { hour12: false });
  }

  // The step line of one status through the buckets that carry counts, held until `end`.
  function stepPath(points, status, sx, sy, end) {
    let d = "";
    let last = null;
    for (const p of points) {
      const y = sy(p.streams[status] || 0);
      d += last === null ? `M${sx(p.t)},${y}` : `H${sx(p.t)}V${y}`;
      last = y;
    }
    return last === null ? "" : `${d}H${sx(end)}`;
  }

  // Stream counts by status as step lines; failovers, rebalances and moves as marks.
  // `buckets` are {t, failovers, rebalances, moves, streams|null}, oldest first.
  function timeline(target, buckets, bucketMs, nowMs) {
    clear(target);
    const W = 900, H = 240, L = 44, R = 12, T = 14, B = 36;
    if (!buckets.length) {
      target.appendChild(svg("text", { x: L, y: H / 2 }, "Nothing has happened yet."));
      return;
    }
    const t0 = buckets[0].t;
    // the chart runs to now (a quiet spell shows as flat lines), by the browser's clock
    const t1 = Math.max(buckets[buckets.length - 1].t + bucketMs, nowMs);
    const points = buckets.filter((b) => b.streams);
    let top = 1;
    for (const p of points) for (const s of ORDER) top = Math.max(top, p.streams[s] || 0);
    const sx = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
    const sy = (v) => T + (1 - v / top) * (H - T - B);
    target.appendChild(svg("line", { class: "axis", x1: L, y1: sy(0), x2: W - R, y2: sy(0) }));
    for (const v of [0, Math.round(top / 2), top]) {
      target.appendChild(svg("text", { x: L - 6, y: sy(v) + 4, "text-anchor": "end" }, v));
    }
    for (const [t, anchor] of [[t0, "start"], [(t0 + t1) / 2, "middle"], [t1, "end"]]) {
      target.appendChild(svg("text", { x: sx(t), y: H - 8, "text-anchor": anchor }, timeLabel(t)));
    }
    const moves = Math.max(1, ...buckets.map((b) => b.moves));
    const barW = Math.max(2, sx(t0 + bucketMs) - sx(t0) - 1);
    for (const b of buckets) {
      if (b.moves) {
        const h = (b.moves / moves) * 30;
        const bar = svg("rect", { x: sx(b.t), y: sy(0) - h, width: barW, height: h, fill: "#c3c9d4" });
        bar.appendChild(svg("title", {}, `${b.moves} stream moves`));
        target.appendChild(bar);
      }
    }
    for (const status of ORDER) {
      if (!points.some((p) => p.streams[status])) continue; // never any: no line on the axis
      const d = stepPath(points, status, sx, sy, t1);
      if (d) target.appendChild(svg("path", { d, fill: "none", stroke: COLORS[status], "stroke-width": 2 }));
    }
    for (const b of buckets) {
      for (const [kind, color, y] of [["failovers", COLORS.failed, T], ["rebalances", COLORS.assigned, T + 12]]) {
        if (!b[kind]) continue;
        const x = sx(b.t + bucketMs / 2);
        target.appendChild(svg("line", { x1: x, y1: T, x2: x, y2: sy(0), stroke: color, "stroke-dasharray": "3 3" }));
        const mark = svg("circle", { cx: x, cy: y, r: 5, fill: color, class: `mark-${kind}` });
        mark.appendChild(svg("title", {}, `${b[kind]} ${kind} at ${timeLabel(b.t)}`));
        target.appendChild(mark);
      }
    }
  }

  return { COLORS, ORDER, statusBar, timeline };
})();

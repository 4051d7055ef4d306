// The pool map: one self-contained page that opens from disk. The report (the JSON of
// `pools --format json`) is embedded as data, and a script builds the page from it: each IPv4
// pool a grid of its /24 blocks, 16 x 16 cells aligned on the last octet; IPv6 pools (and IPv4
// pools too large for a grid) as their held addresses and free ranges. Addresses kept for someone
// (retained, reserved) are cells of their own states, listed below each grid; the namespaces
// with a quota are a table.
//
// Every string from a manifest reaches the page as data and leaves the script only through
// textContent or an attribute set as a property, never as markup; the content security policy
// allows this one script (by hash) and nothing from the network.
//
// A /16 is 65,536 cells: bare <i> elements (no attribute but a one-letter class, no listener: a
// cell's address is its place in its block), written a /24 block at a time. The first blocks
// are written before the first paint, the others in slices of 25 ms after it (or at once when
// looked up), and blocks off screen are neither laid out nor painted (content-visibility). Keyboard focus is a roving
// tabindex: one cell per grid is in the tab order, arrow keys move within it.

import { createHash } from "node:crypto";
import type { PoolsReport } from "./report.ts";

/** The largest IPv4 pool drawn as a grid (a /16); a larger one is listed like an IPv6 pool. */
const GRID_LIMIT = 65_536;
/** The /24 blocks whose cells are written before the first paint: more than a screen holds. */
const EAGER_BLOCKS = 24;

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1rem 2rem; color: #1d1d1d; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.15rem; margin: 1.6rem 0 0.3rem; }
.summary { color: #444; margin: 0.2rem 0 0.6rem; }
.legend { display: flex; flex-wrap: wrap; gap: 0.4rem 1.2rem; margin: 0.6rem 0; }
.legend span { display: inline-flex; align-items: center; gap: 0.35rem; }
.swatch { display: inline-block; width: 12px; height: 12px; border: 1px solid #888; }
.search { margin: 0.6rem 0; } .search input { font: inherit; width: 22rem; padding: 0.2rem 0.4rem; }
.problems li { color: #a31515; }
.grid { margin: 0.4rem 0; }
.block { display: inline-block; vertical-align: top; margin: 0 12px 12px 0;
  content-visibility: auto; contain-intrinsic-size: 191px 210px; }
.block-label { font: 11px ui-monospace, monospace; color: #555; }
.cells { display: grid; grid-template-columns: repeat(16, 11px); grid-auto-rows: 11px; gap: 1px; }
.cells i { display: block; }
.f { background: #cfe9cf; } .h { background: #1f5fa8; } .s { background: #7b4fc0; }
.e { background: #ef9a1a; } .c { background: #d42a2a; } .o { background: #f3f3f3; }
.r { background: #93c6e8; } .v { background: #2a9d8f; }
.a { background: repeating-linear-gradient(45deg, #b5b5b5 0 2px, #eee 2px 4px); }
.cells i:focus { outline: 2px solid #000; outline-offset: 1px; z-index: 1; }
.hit { outline: 2px solid #ffd400 !important; box-shadow: 0 0 0 3px #000; z-index: 1; }
tr.hit { background: #fff4b0; box-shadow: none; outline: none !important; }
.info { font: 12px ui-monospace, monospace; min-height: 1.3em; color: #333; }
table { border-collapse: collapse; margin: 0.3rem 0; }
td, th { text-align: left; padding: 0.1rem 0.8rem 0.1rem 0; vertical-align: top; }
th { font-weight: 600; color: #444; } td.mono { font-family: ui-monospace, monospace; }
.free { font: 12px ui-monospace, monospace; color: #333; }
`;

const SCRIPT = `"use strict";
(() => {
  const started = performance.now();
  const report = JSON.parse(document.getElementById("pool-data").textContent);
  const GRID_LIMIT = ${GRID_LIMIT};
  const EAGER_BLOCKS = ${EAGER_BLOCKS};
  const CLASS = { held: "h", shared: "s", "requested-elsewhere": "e", conflicting: "c", retained: "r", reserved: "v" };
  const STATES = [
    ["f", "free"], ["h", "held"], ["s", "shared"], ["e", "requested elsewhere"],
    ["c", "conflicting"], ["r", "retained"], ["v", "reserved"], ["a", "avoided (.0/.255)"],
  ];
  const NAMES = Object.fromEntries([...STATES, ["o", "not in the pool"]]);
  const el = (tag, props, ...children) => {
    const node = Object.assign(document.createElement(tag), props);
    node.append(...children);
    return node;
  };
  const ip4 = (text) => {
    const m = /^(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})$/.exec(text.trim());
    return m && m.slice(1).every((p) => +p < 256)
      ? ((+m[1] << 24) | (+m[2] << 16) | (+m[3] << 8) | +m[4]) >>> 0
      : undefined;
  };
  const text4 = (v) => (v >>> 24) + "." + ((v >>> 16) & 255) + "." + ((v >>> 8) & 255) + "." + (v & 255);
  const holdersText = (entry) =>
    entry.holders
      .map((h) => h.ref + " (" + [h.via, h.sharingKey && "key " + h.sharingKey, h.ports.join(" ")]
        .filter(Boolean).join(", ") + ")")
      .join("; ");
  const reservedText = (r) => "reserved by AddressReservation " + r.reservation + " for " + r.for;
  const retainedText = (r) => "retained for " + r.for + " until " + r.until + " (since " + r.since + ")";
  // What each pool keeps, by address: the retained and reserved addresses nobody holds (their own
  // cell states), and the reservation of every reserved one (held ones too).
  function keptOf(pool) {
    const kept = new Map();
    const reservations = new Map();
    for (const r of pool.retained) kept.set(r.address, { state: "retained", for: [r.for], text: retainedText(r) });
    for (const r of pool.reserved) {
      reservations.set(r.address, r);
      if (r.heldBy.length === 0) kept.set(r.address, { state: "reserved", for: [r.for, r.reservation], text: reservedText(r) });
    }
    return { kept, reservations };
  }
  const grids = [];
  const rows = [];
  const counts = Object.fromEntries(STATES.map(([c]) => [c, 0]));

  function stateOf(grid, v) {
    if (!grid.ranges.some(([a, b]) => a <= v && v <= b)) return "o";
    const entry = grid.held.get(v);
    if (entry) return CLASS[entry.state];
    const kept = grid.kept.get(v);
    if (kept) return CLASS[kept.state];
    const octet = v & 255;
    return grid.pool.avoidBuggyIPs && (octet === 0 || octet === 255) ? "a" : "f";
  }
  function describe(grid, v) {
    const entry = grid.held.get(v);
    const kept = grid.kept.get(v);
    if (kept) return text4(v) + ": " + kept.text;
    const reservation = entry && grid.reservations.get(entry.address);
    return text4(v) + ": " + NAMES[stateOf(grid, v)] + (entry ? " by " + holdersText(entry) : "") +
      (reservation ? "; " + reservedText(reservation) : "");
  }
  function cellOf(grid, v) {
    const cells = grid.blocks.get(v - (v & 255));
    if (!cells) return undefined;
    fill(grid, cells);
    return cells.children[v & 255];
  }
  // A block's 256 cells are written when it is first needed: the blocks near the top at once,
  // the others a slice at a time after the first paint, any one at once when it is looked up.
  function fill(grid, cells) {
    if (cells.firstChild) return;
    const base = Number(cells.dataset.base);
    let html = "";
    for (let i = 0; i < 256; i++) html += '<i class="' + stateOf(grid, base + i) + '"></i>';
    cells.innerHTML = html;
  }
  const later = [];
  let eager = EAGER_BLOCKS;
  function fillLater() {
    const until = performance.now() + 25;
    while (later.length > 0 && performance.now() < until) {
      const [grid, cells] = later.shift();
      fill(grid, cells);
    }
    if (later.length > 0) setTimeout(fillLater, 0);
    else {
      document.body.dataset.completeMs = performance.now().toFixed(0);
      document.body.dataset.complete = "true";
    }
  }
  function valueOf(cell) {
    const cells = cell.parentNode;
    return Number(cells.dataset.base) + Array.prototype.indexOf.call(cells.children, cell);
  }
  function focusCell(grid, v) {
    const cell = cellOf(grid, v);
    if (!cell) return;
    const old = cellOf(grid, grid.focused);
    if (old) old.tabIndex = -1;
    grid.focused = v;
    cell.tabIndex = 0;
    cell.focus({ preventScroll: true });
    cell.scrollIntoView({ block: "nearest", inline: "nearest" });
  }

  function drawGrid(section, pool, ranges) {
    const held = new Map();
    for (const entry of pool.addresses) {
      const v = ip4(entry.address);
      if (v !== undefined) held.set(v, entry);
    }
    const { kept: keptByText, reservations } = keptOf(pool);
    const kept = new Map();
    for (const [text, entry] of keptByText) {
      const v = ip4(text);
      if (v !== undefined) kept.set(v, entry);
    }
    const grid = { pool, ranges, held, kept, reservations, blocks: new Map(), focused: ranges[0][0] };
    const bases = new Set();
    for (const [a, b] of ranges) for (let base = a - (a & 255); base <= b; base += 256) bases.add(base);
    let html = "";
    for (const base of [...bases].sort((x, y) => x - y)) {
      html += '<div class="block"><div class="block-label">' + text4(base) + '/24</div><div class="cells" data-base="' + base + '"></div></div>';
      for (let i = 0; i < 256; i++) {
        const state = stateOf(grid, base + i);
        if (state !== "o") counts[state]++;
      }
    }
    const container = el("div", { className: "grid" });
    container.setAttribute("role", "group");
    container.setAttribute("aria-label", "addresses of pool " + pool.name + "; arrow keys move, PageUp/PageDown by /24");
    container.innerHTML = html;
    for (const cells of container.querySelectorAll(".cells")) {
      grid.blocks.set(Number(cells.dataset.base), cells);
      if (eager-- > 0) fill(grid, cells);
      else later.push([grid, cells]);
    }
    const info = el("p", { className: "info" });
    info.setAttribute("aria-live", "polite");
    section.append(container, info);
    const first = cellOf(grid, grid.focused);
    if (first) first.tabIndex = 0;
    const show = (cell) => {
      const text = describe(grid, valueOf(cell));
      cell.title = text;
      info.textContent = text;
      return text;
    };
    container.addEventListener("mouseover", (event) => {
      if (event.target.tagName === "I") show(event.target);
    });
    container.addEventListener("click", (event) => {
      if (event.target.tagName === "I") focusCell(grid, valueOf(event.target));
    });
    container.addEventListener("focusin", (event) => {
      if (event.target.tagName !== "I") return;
      const v = valueOf(event.target);
      if (v !== grid.focused) focusCell(grid, v);
      event.target.setAttribute("aria-label", show(event.target));
    });
    const low = ranges[0][0];
    const high = ranges[ranges.length - 1][1];
    const STEPS = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -16, ArrowDown: 16, PageUp: -256, PageDown: 256 };
    container.addEventListener("keydown", (event) => {
      let next;
      if (event.key in STEPS) next = grid.focused + STEPS[event.key];
      else if (event.key === "Home") next = low;
      else if (event.key === "End") next = high;
      else return;
      event.preventDefault();
      focusCell(grid, Math.min(high, Math.max(low, next)));
    });
    grids.push(grid);
  }

  // One row per address: [address, state, what is said of it, the refs a search finds it by].
  function addressTable(entries, heading) {
    const body = el("tbody");
    for (const [address, state, text, refs] of entries) {
      const row = el("tr", {},
        el("td", { className: "mono", textContent: address }),
        el("td", {}, el("span", { className: "swatch " + CLASS[state] }), " " + state),
        el("td", { textContent: text }));
      row.dataset.address = address;
      rows.push({ row, address, text, refs });
      body.append(row);
    }
    return el("table", {}, el("thead", {}, el("tr", {},
      el("th", { textContent: "address" }), el("th", { textContent: "state" }),
      el("th", { textContent: heading }))), body);
  }
  const heldTable = (entries) => addressTable(
    entries.map((entry) => [entry.address, entry.state, holdersText(entry), entry.holders.map((h) => h.ref)]),
    "holders (how, sharing key, ports)");

  const main = document.getElementById("map");
  const summary = report.summary;
  const count = (n, one, many) => n + " " + (n === 1 ? one : many);
  document.getElementById("summary").textContent = count(summary.pools, "pool", "pools") + ", " +
    count(summary.held, "address", "addresses") + " held, " + summary.retained + " retained, " +
    summary.reserved + " reserved, " + count(summary.problems, "problem", "problems");
  if (report.problems.length > 0) {
    main.append(el("h2", { textContent: "Problems" }),
      el("ul", { className: "problems" }, ...report.problems.map((p) => el("li", { textContent: p.message }))));
  }
  for (const pool of report.pools) {
    const section = el("section", { className: "pool" });
    section.dataset.pool = pool.name;
    section.append(
      el("h2", { textContent: "pool " + pool.name }),
      el("p", { className: "summary", textContent:
        pool.ranges.join(", ") + " · " + pool.size + " addresses, " + pool.used + " used, " + pool.free +
        " free (" + (pool.shareUsed * 100).toFixed(1) + "% used) · auto-assign " + pool.autoAssign +
        (pool.avoidBuggyIPs ? " · avoids .0/.255" : "") + " · " + pool.serviceAllocation + " · " + pool.origin }));
    const ranges = pool.ranges.flatMap((text) => {
      const [a, b = a] = text.split("-");
      const first = ip4(a);
      const last = ip4(b);
      return first === undefined || last === undefined ? [] : [[first, last]];
    });
    const cells = ranges.reduce((sum, [a, b]) => sum + b - a + 1, 0);
    if (ranges.length > 0 && cells <= GRID_LIMIT) drawGrid(section, pool, ranges);
    else if (ranges.length > 0) section.append(el("p", { textContent: "more than " + GRID_LIMIT + " IPv4 addresses: listed, not drawn" }));
    if (pool.addresses.length > 0) section.append(heldTable(pool.addresses));
    const { kept } = keptOf(pool);
    if (kept.size > 0) {
      section.append(addressTable([...kept].map(([address, entry]) => [address, entry.state, entry.text, entry.for]),
        "kept for (retained until, reserved by)"));
    }
    const free = pool.freeRanges.map((run) => run.size === "1" ? run.range : run.range + " (" + run.size + ")");
    section.append(el("p", { className: "free", textContent: "free: " + (free.length > 0 ? free.join(", ") : "none") }));
    main.append(section);
  }
  if (report.outside.length > 0) {
    main.append(el("h2", { textContent: "Held outside every pool" }), heldTable(report.outside));
  }
  if (report.namespaces.length > 0) {
    const body = el("tbody", {}, ...report.namespaces.map((n) => el("tr", {},
      el("td", { textContent: n.namespace }), el("td", { textContent: String(n.quota) }),
      el("td", { textContent: n.used + (n.used > n.quota ? " (over)" : "") }),
      el("td", { className: "mono", textContent: n.addresses.join(", ") }))));
    main.append(el("h2", { textContent: "Namespaces with an address quota" }),
      el("table", { className: "quotas" }, el("thead", {}, el("tr", {}, ...["namespace", "quota", "used", "addresses"]
        .map((t) => el("th", { textContent: t })))), body));
  }
  const legend = document.getElementById("legend");
  for (const [c, name] of STATES) {
    const item = el("span", {}, el("span", { className: "swatch " + c }), name + " (" + counts[c] + ")");
    item.dataset.state = c;
    legend.append(item);
  }

  const status = document.getElementById("search-status");
  let hits = [];
  function search(query) {
    for (const node of hits) node.classList.remove("hit");
    hits = [];
    const q = query.trim().toLowerCase();
    if (q === "") { status.textContent = ""; return; }
    const v = ip4(q);
    const matches = rows.filter(({ address, refs }) => v === undefined
      ? address === q || refs.some((ref) => ref.toLowerCase().includes(q))
      : address === q);
    for (const { row } of matches) hits.push(row);
    let target;
    for (const grid of grids) {
      const values = v !== undefined ? [v] : matches.map(({ address }) => ip4(address)).filter((x) => x !== undefined);
      for (const value of values) {
        if (!grid.ranges.some(([a, b]) => a <= value && value <= b)) continue;
        const cell = cellOf(grid, value);
        if (!cell) continue;
        hits.push(cell);
        target ??= { grid, value };
      }
    }
    for (const node of hits) node.classList.add("hit");
    if (target) focusCell(target.grid, target.value);
    else if (hits.length > 0) hits[0].scrollIntoView({ block: "center" });
    status.textContent = v !== undefined
      ? (target ? describe(target.grid, target.value) : (matches.length > 0 ? q + ": " + matches[0].text : q + " is in no pool drawn here"))
      : matches.length + (matches.length === 1 ? " address" : " addresses") + " held or kept for a name matching \\u201c" + query.trim() + "\\u201d";
  }
  const input = document.getElementById("search");
  let timer;
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => search(input.value), 120); });
  input.addEventListener("keydown", (event) => { if (event.key === "Enter") { clearTimeout(timer); search(input.value); } });

  document.body.dataset.renderMs = (performance.now() - started).toFixed(1);
  document.body.dataset.ready = "true";
  // Timings since navigation, for whoever measures the page: painted once the second frame starts.
  requestAnimationFrame(() => requestAnimationFrame(() => {
    document.body.dataset.paintedMs = performance.now().toFixed(0);
  }));
  setTimeout(fillLater, 0);
})();
`;

/** JSON that is safe inside a <script> element: no `<` (so no `</script>` nor `<!--`). */
function scriptJson(value: unknown): string {
  return JSON.stringify(value)
    .replaceAll("<", "\\u003c")
    .replaceAll("\u2028", "\\u2028")
    .replaceAll("\u2029", "\\u2029");
}

export function poolMapPage(report: PoolsReport): string {
  const hash = createHash("sha256").update(SCRIPT).digest("base64");
  const policy = `default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-${hash}'`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${policy}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lb-ip-guard pool map</title>
<style>${STYLE}</style>
</head>
<body>
<h1>lb-ip-guard pool map</h1>
<p id="summary" class="summary"></p>
<div id="legend" class="legend" aria-label="legend"></div>
<div class="search"><label>Find a Service or an address <input id="search" type="search" placeholder="team-a/web or 192.0.2.10" autocomplete="off"></label> <span id="search-status" role="status"></span></div>
<main id="map"></main>
<script type="application/json" id="pool-data">${scriptJson(report)}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

/* deliberate's trace viewer: the one renderer shared by the static file and the live page.
 *
 *   Viewer.setTrace(trace)  draw a whole deliberate trace (format 1 or 2: the final tree, replayable)
 *   Viewer.start(meta)      begin an empty live drawing: only the question's root node
 *   Viewer.applyEvent(e)    grow the live drawing by one search event (expand, prune, ...)
 *
 * Layout comes from d3-hierarchy's tidy tree (vendored beside this file); the text panels
 * are in panels.js. Text from the model reaches the DOM through textContent only, never
 * through innerHTML. */
"use strict";
const Viewer = (() => {
  const SVG = "http://www.w3.org/2000/svg";
  const W = 140, H = 38, GAP_X = 8, GAP_Y = 36, LABEL = 21;
  const $ = (id) => document.getElementById(id);

  let meta = {}, events = [], live = false;
  const nodes = new Map();        // id -> {id, parent, kids: [node], a: node attributes}
  let bornAt = new Map();         // id -> how many events have been applied when it appears
  let finalPath = new Set();
  let shown = null;               // the replay/live state being drawn, or null: the final graph
  const collapsed = new Set();
  let drawn = new Map();          // id -> {g, box, bar, sub (once labelled), x, y, parent} per node on screen
  let selected = null, dirty = false, moved = false, touched = false;  // touched: the reader panned or zoomed
  const view = {x: 0, y: 0, k: 1}, FAR = 0.45, READABLE = 0.85;  // zoom levels: labels hidden below FAR
  let panel = {width: 1000, height: 600}, labelling = null;  // the tree panel's size, kept to avoid forced layouts

  function svg(tag, attrs, parent) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }
  const short = Panels.short;

  // -- the model: nodes, and the state the search was in after k events --------------------
  function addNode(id, parent, attrs) {
    let n = nodes.get(id);
    if (!n) { n = {id, parent, kids: [], a: {}}; nodes.set(id, n); }
    Object.assign(n.a, attrs);
    return n;
  }
  function link() {
    for (const n of nodes.values()) n.kids = [];
    for (const n of nodes.values()) if (n.parent !== null && nodes.has(n.parent)) nodes.get(n.parent).kids.push(n);
    for (const n of nodes.values()) n.kids.sort((a, b) => a.id - b.id);
  }
  function pathTo(id) {
    const path = new Set();
    for (let n = nodes.get(id); n; n = nodes.get(n.parent)) path.add(n.id);
    return path;
  }
  function freshState() {
    const s = {status: new Map(), value: new Map(), path: new Set(), k: 0};
    // A terminal node gets no event of its own (only a verifier's verdict makes one).
    for (const n of nodes.values()) s.status.set(n.id, !live && n.a.status === "terminal" ? "terminal" : "open");
    return s;
  }
  // One event applied to a state: the timeline replays with this and the live page grows
  // with it, so both show a step the same way.
  function step(s, e) {
    const each = (ids, f) => (Array.isArray(ids) ? ids.forEach(f) : null);
    if (e.type === "expand") each(e.nodes, (p) => { if (s.status.get(p) === "open") s.status.set(p, "expanded"); });
    else if (e.type === "evaluate") each(e.nodes, (n, i) => s.value.set(n, (e.values || [])[i]));
    else if (e.type === "verify") s.status.set(e.node, e.ok ? "solved" : "failed");
    else if (e.type === "prune") s.status.set(e.node, "pruned");
    else if (e.type === "answer" && e.node !== null && e.node !== undefined) s.path = pathTo(e.node);
    s.k += 1;
  }
  function stateAt(k) {
    const s = freshState();
    for (let i = 0; i < k; i++) step(s, events[i]);
    return s;
  }
  const statusOf = (n) => (shown ? shown.status.get(n.id) || "open" : n.a.status || "open");
  const valueOf = (n) => (shown ? (shown.value.has(n.id) ? shown.value.get(n.id) : null) : n.a.value);
  const visible = (n) => !shown || live || !bornAt.has(n.id) || bornAt.get(n.id) <= shown.k;

  // -- drawing ---------------------------------------------------------------------------
  // One node's elements, cloned for every node: far cheaper than building each one anew.
  let protos = null;
  function prototypes() {
    const make = (toggle) => {
      const g = svg("g", {});
      svg("rect", {class: "box", x: -W / 2, y: -H / 2, width: W, height: H, rx: 5}, g);
      svg("rect", {class: "bar-bg", x: -W / 2 + 6, y: 12, width: W - 12, height: 4, rx: 2}, g);
      svg("rect", {class: "bar", x: -W / 2 + 6, y: 12, width: 0, height: 4, rx: 2}, g);
      if (toggle) svg("circle", {class: "toggle", cy: H / 2 + 7, r: 5}, g);
      return g;
    };
    return (protos = protos || {leaf: make(false), inner: make(true)});
  }
  // Rebuilds every node element; called when the tree's shape changes (load, collapse, new nodes).
  function render() {
    const root = nodes.get(0);
    if (!root) return;
    const tree = d3.hierarchy(root, (n) => (collapsed.has(n.id) ? null : n.kids));
    d3.tree().nodeSize([W + GAP_X, H + GAP_Y]).separation((a, b) => (a.parent === b.parent ? 1 : 1.1))(tree);
    const frag = document.createDocumentFragment(), {leaf, inner} = prototypes();
    drawn = new Map();
    tree.each((d) => {
      const n = d.data, g = (n.kids.length ? inner : leaf).cloneNode(true);
      g.setAttribute("data-node", n.id);
      g.setAttribute("transform", `translate(${d.x},${d.y})`);
      const [box, , bar, toggle] = g.children;
      if (toggle) {
        toggle.setAttribute("data-toggle", n.id);
        if (collapsed.has(n.id)) {
          toggle.classList.add("folded");
          svg("text", {class: "hidden-count", y: H / 2 + 24}, g).textContent = `+${d3.hierarchy(n, (m) => m.kids).count().value - 1}`;
        }
      }
      drawn.set(n.id, {g, box, bar, sub: null, x: d.x, y: d.y, parent: d.parent ? d.parent.data.id : null});
      frag.appendChild(g);
    });
    $("nodes").replaceChildren(frag);
    document.body.setAttribute("data-node-count", String(nodes.size));  // drawn or folded away
    paint();
    labelInView();
  }
  // Text is what costs most to lay out, so a node gets its text elements only once it comes
  // into view (or near it); with thousands of nodes, most are never looked at closely.
  function labelInView() {
    if (view.k < FAR) return;
    const m = 200, x0 = (-view.x - m) / view.k, x1 = (panel.width - view.x + m) / view.k;
    const y0 = (-view.y - m) / view.k, y1 = (panel.height - view.y + m) / view.k;
    for (const [id, d] of drawn) {
      if (d.sub || d.x < x0 || d.x > x1 || d.y < y0 || d.y > y1) continue;
      const n = nodes.get(id), label = svg("text", {class: "label", y: -4}, d.g);
      label.textContent = id === 0 ? "question" : short(String(n.a.thought || `#${id}`).replace(/\s+/g, " ").trim(), LABEL);
      d.sub = svg("text", {class: "sub", y: 8}, d.g);
      d.sub.textContent = d.subText;
    }
  }
  // Updates colours, bars, visibility and the answer path in place; cheap, so the timeline
  // slider can call it on every move.
  function paint() {
    const path = shown ? shown.path : finalPath;
    const edges = [], pathEdges = [];
    for (const [id, d] of drawn) {
      const n = nodes.get(id), status = statusOf(n), value = valueOf(n), on = path.has(id) ? "1" : "0";
      const hide = visible(n) ? "0" : "1";
      if (d.g.dataset.status !== status) d.g.setAttribute("data-status", status);
      if (d.g.dataset.onPath !== on) d.g.setAttribute("data-on-path", on);
      if (d.g.dataset.hidden !== hide) d.g.setAttribute("data-hidden", hide);
      const sub = `#${id} ${status}${typeof value === "number" ? " · " + value.toFixed(2) : ""}`;
      if (d.subText !== sub) {
        d.subText = sub;
        if (d.sub) d.sub.textContent = sub;
        d.bar.setAttribute("width", typeof value === "number" ? Math.max(0, Math.min(1, value)) * (W - 12) : 0);
      }
      if (d.parent === null || hide === "1") continue;
      const p = drawn.get(d.parent), my = (p.y + d.y) / 2;
      (on === "1" && path.has(d.parent) ? pathEdges : edges).push(`M${p.x},${p.y + H / 2}C${p.x},${my} ${d.x},${my} ${d.x},${d.y - H / 2}`);
    }
    $("edges").setAttribute("d", edges.join(""));
    $("path-edges").setAttribute("d", pathEdges.join(""));
    if (selected !== null) details(selected);
  }
  function schedule() {
    if (dirty) return;
    dirty = true;
    setTimeout(() => { dirty = false; link(); render(); if (!touched) fit(null, true); }, 50);  // coalesce bursts of live events
  }
  function applyView() {
    $("viewport").setAttribute("transform", `translate(${view.x},${view.y}) scale(${view.k})`);
    $("tree").classList.toggle("far", view.k < FAR);  // labels unreadable this small: skip drawing them
    if (!labelling) labelling = setTimeout(() => { labelling = null; labelInView(); }, 40);
  }
  // Fits the tree into the panel; with ``readable``, a tree too wide to read that way is
  // shown at a readable size from its root instead (the fit button gives the overview).
  // ``box`` is the panel's size, measured before the nodes were inserted, so that fitting
  // does not force a layout while every label is still showing.
  function fit(box, readable) {
    box = panel = box || $("tree").getBoundingClientRect();
    let x0 = Infinity, x1 = -Infinity, y1 = 0;
    for (const d of drawn.values()) { x0 = Math.min(x0, d.x); x1 = Math.max(x1, d.x); y1 = Math.max(y1, d.y); }
    if (!drawn.size) return;
    const w = x1 - x0 + W + 40, h = y1 + H + 60, whole = Math.min(1.2, box.width / w, box.height / h);
    const focus = readable && whole < READABLE;
    view.k = focus ? READABLE : Math.max(0.001, whole);
    view.x = box.width / 2 - (focus ? drawn.get(0).x : (x0 + x1) / 2) * view.k;
    view.y = (H / 2 + 24) * view.k;
    applyView();
  }

  // -- the panels: header, details, timeline ------------------------------------------------
  function header() { Panels.header($("head"), meta, live); }
  function details(id) {
    if (drawn.has(selected)) drawn.get(selected).g.classList.remove("selected");
    if (drawn.has(id)) drawn.get(id).g.classList.add("selected");
    selected = id;
    const n = nodes.get(id);
    if (n) Panels.details($("details"), id, n.a, statusOf(n), meta);
  }
  function timeline() {
    const slider = $("step");
    slider.max = events.length;
    slider.value = shown ? shown.k : events.length;
    $("step-label").textContent = `event ${slider.value}/${events.length} · ${Panels.describe(events[slider.value - 1])}`;
  }
  function seek(k) {
    shown = k >= events.length && !live ? null : stateAt(k);
    paint();
    timeline();
  }
  let playing = null;
  function play() {
    if (playing) { clearInterval(playing); playing = null; $("play").textContent = "▶"; return; }
    if (+$("step").value >= events.length) seek(0);
    const stride = Math.max(1, Math.round(events.length / 300));  // about 20 s for any trace
    $("play").textContent = "❚❚";
    playing = setInterval(() => {
      const k = Math.min(events.length, +$("step").value + stride);
      seek(k);
      if (k >= events.length) play();
    }, 60);
  }

  function wire() {
    const tree = $("tree");
    let drag = null;
    tree.addEventListener("pointerdown", (e) => { drag = {x: e.clientX, y: e.clientY, vx: view.x, vy: view.y}; moved = false; });
    window.addEventListener("pointermove", (e) => {
      if (!drag) return;
      if (Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 4) moved = true;
      if (!moved) return;
      touched = true;
      view.x = drag.vx + e.clientX - drag.x; view.y = drag.vy + e.clientY - drag.y; applyView();
    });
    window.addEventListener("pointerup", () => { drag = null; });
    window.addEventListener("resize", () => { panel = tree.getBoundingClientRect(); labelInView(); });
    tree.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = tree.getBoundingClientRect(), px = e.clientX - r.left, py = e.clientY - r.top;
      const k = Math.max(0.02, Math.min(4, view.k * Math.exp(-e.deltaY * 0.0015)));
      view.x = px - ((px - view.x) * k) / view.k; view.y = py - ((py - view.y) * k) / view.k; view.k = k; touched = true;
      applyView();
    }, {passive: false});
    tree.addEventListener("click", (e) => {
      if (moved) return;  // the end of a pan, not a click
      const toggle = e.target.closest("[data-toggle]"), node = e.target.closest("[data-node]");
      if (toggle) {
        const id = +toggle.dataset.toggle;
        collapsed.has(id) ? collapsed.delete(id) : collapsed.add(id);
        render();
      } else if (node) details(+node.dataset.node);
    });
    $("step").addEventListener("input", (e) => seek(+e.target.value));
    $("play").addEventListener("click", play);
    $("fit").addEventListener("click", () => { touched = false; fit(); });
    $("expand-all").addEventListener("click", () => { collapsed.clear(); render(); });
  }
  function ready() {
    $("nodes").getBBox();  // forces style and layout now, so data-render-ms counts them too
    document.documentElement.setAttribute("data-render-ms", String(Math.round(performance.now())));
    document.documentElement.setAttribute("data-ready", "1");
  }

  let wired = false;
  function begin() { if (!wired) { wire(); wired = true; } }

  return {
    /** Draw a whole trace (a deliberate-trace/1 or /2 object); the page becomes the static view. */
    setTrace(trace) {
      begin();
      meta = trace.meta || {}; events = Array.isArray(trace.events) ? trace.events : []; live = false;
      nodes.clear(); collapsed.clear();
      for (const raw of trace.graph.nodes) addNode(raw.id, raw.parent === undefined ? null : raw.parent, raw);
      link();
      bornAt = new Map();
      events.forEach((e, i) => {
        if (e.type === "expand") for (const kids of e.children || []) for (const c of kids) if (!bornAt.has(c)) bornAt.set(c, i + 1);
      });
      finalPath = typeof meta.answer_node === "number" ? pathTo(meta.answer_node) : new Set();
      shown = null;
      document.body.classList.remove("live");
      header();
      const box = $("tree").getBoundingClientRect();  // before any node exists: cheap
      render(); fit(box, true); labelInView(); timeline(); ready();
    },
    /** Begin a live drawing: the root alone, grown by applyEvent. */
    start(initialMeta) {
      begin();
      meta = initialMeta || {}; events = []; live = true; nodes.clear(); collapsed.clear();
      addNode(0, null, {status: "open", depth: 0});
      shown = freshState(); finalPath = new Set();
      document.body.classList.add("live");
      header(); render(); fit(); timeline(); ready();
    },
    /** Apply one search event to the live drawing (new nodes are drawn in a coalesced pass). */
    applyEvent(e) {
      if (!live) return;
      events.push(e);
      let grew = false;
      if (e.type === "expand") (e.nodes || []).forEach((p, i) => {
        for (const c of (e.children || [])[i] || []) {
          if (nodes.has(c)) continue;
          addNode(c, p, {depth: (nodes.get(p)?.a.depth ?? 0) + 1});
          shown.status.set(c, "open");
          grew = true;
        }
      });
      step(shown, e);
      // Events carry ids and numbers but no text, so a live node shows its values as they come.
      if (e.type === "verify" && nodes.has(e.node)) nodes.get(e.node).a.answer = e.answer;
      if (e.type === "evaluate") (e.nodes || []).forEach((id, i) => {
        const a = nodes.has(id) ? nodes.get(id).a : null;
        if (a) (a.values = a.values || []).push({value: (e.values || [])[i], source: e.source, detail: null, t: e.t});
      });
      if (grew) schedule(); else paint();
      timeline();
    },
    /** Centre the view on node ``id`` and show its details (for links and screenshots). */
    focus(id) {
      const d = drawn.get(id);
      if (!d) return;
      view.k = Math.max(view.k, READABLE);
      view.x = panel.width / 2 - d.x * view.k; touched = true;
      view.y = Math.min((H / 2 + 24) * view.k, panel.height / 2 - d.y * view.k);  // the top stays in view if it can
      applyView(); labelInView(); details(id);
    },
  };
})();

/* The viewer's text panels: the header, a node's details and the timeline's captions.
 * Everything here writes text with textContent; nothing is parsed as markup. */
"use strict";
const Panels = (() => {
  function html(tag, cls, text, parent) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = String(text);
    if (parent) parent.appendChild(e);
    return e;
  }
  const short = (s, n) => (s.length > n ? s.slice(0, n - 1) + "…" : s);
  const num = (v) => (typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(3).replace(/\.?0+$/, "")) : String(v));
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (Array.isArray(v)) return v.map(fmt).join(", ");
    if (typeof v === "object") return Object.entries(v).map(([k, x]) => `${k}=${typeof x === "object" && x ? JSON.stringify(x) : num(x)}`).join(" · ");
    return num(v);
  }

  /** The header: question, answer, strategy, options, model, budget, stop reason, stats. */
  function header(head, meta, live) {
    head.replaceChildren();
    html("h1", "", meta.question || "(no question)", head);
    document.title = "deliberate · " + short(String(meta.question || ""), 80);
    const dl = html("dl", "", undefined, head);
    const budget = meta.budget ? Object.assign({}, meta.budget) : null;
    const rows = [["answer", meta.answer === undefined ? (live ? "thinking…" : null) : meta.answer || "no answer"],
      ["strategy", meta.strategy], ["task", meta.task], ["options", meta.options],
      ["model", meta.model ? `${meta.model}${meta.model_sha256 ? " (" + meta.model_sha256 + ")" : ""}` : null],
      ["budget", budget], ["stop", meta.stop_reason], ["seed", meta.seed], ["stats", meta.stats]];
    for (const [k, v] of rows) {
      if (v === undefined || (v === null && k !== "answer")) continue;
      const pair = html("div", "", undefined, dl);
      html("dt", "", k, pair);
      html("dd", k !== "answer" ? "" : meta.answer ? "answer" : "no-answer", fmt(v), pair);
    }
  }
  /** Everything the trace knows about one node, into ``box``. */
  function details(box, id, a, status, meta) {
    box.replaceChildren();
    html("h2", "", `#${id} · ${status} · depth ${a.depth === undefined ? "?" : a.depth}`, box);
    html("h3", "", id === 0 ? "question" : "thought", box);
    html("pre", "", id === 0 ? meta.question || "" : a.thought === undefined ? "(the text arrives when the search ends)" : a.thought, box);
    if (a.state !== undefined) {
      const flat = JSON.stringify(a.state), entries = a.state && typeof a.state === "object" ? Object.entries(a.state) : [];
      html("h3", "", "state", box);
      html("pre", "", flat.length <= 60 || !entries.length ? flat : entries.map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join("\n"), box);
    }
    const values = a.values || [];
    html("h3", "", `values (${values.length})`, box);
    const table = html("table", "", undefined, box);
    for (const v of values) {
      const tr = html("tr", "", undefined, table);
      html("td", "", num(v.value), tr); html("td", "", v.source, tr);
      html("td", "", v.detail && typeof v.detail === "object" ? Object.entries(v.detail).map(([k, p]) => `${k} ${num(p)}`).join(" · ") : fmt(v.detail), tr);
      html("td", "", `t=${num(v.t)}s`, tr);
    }
    const dl = html("dl", "", undefined, box);
    for (const k of ["value", "tokens", "seed", "created", "expansions", "visits", "answer"]) {
      if (a[k] === undefined || a[k] === null || (k === "visits" && !a[k])) continue;
      html("dt", "", k === "created" ? "created (s)" : k, dl); html("dd", "", fmt(a[k]), dl);
    }
    if (a.aliases && a.aliases.length) { html("dt", "", "merged", dl); html("dd", "", `${a.aliases.length} other step(s) reached this state`, dl); }
  }
  /** One event as a short caption for the timeline. */
  function describe(e) {
    if (!e) return "start: the question alone";
    const ids = (xs) => (Array.isArray(xs) ? xs.map((x) => "#" + x).join(" ") : "");
    const what = {expand: () => `expand ${ids(e.nodes)} → ${(e.children || []).flat().length} new`,
      evaluate: () => `evaluate (${e.source}) ${ids(e.nodes)}`, verify: () => `verify #${e.node}: ${e.ok ? "right" : "wrong"}`,
      prune: () => `prune #${e.node} (${e.reason})`, backtrack: () => `backtrack #${e.source} → #${e.target}`,
      finish: () => `finish from #${e.node}`, answer: () => (e.node === null || e.node === undefined ? `no answer (${e.reason})` : `answer #${e.node} (${e.reason})`)}[e.type];
    return `t=${num(e.t)}s · ${what ? what() : e.type}`;
  }
  return {html, short, num, fmt, header, details, describe};
})();

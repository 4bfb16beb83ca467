// outbox-cdc admin console. Plain JavaScript, no build step, no outside
// resources: every figure comes from /api/v1 after sign-in. Text from the
// server is only ever set with textContent.
"use strict";

const api = "/api/v1";
let csrf = sessionStorage.getItem("outbox-cdc-csrf") || "";
let me = null;
let timer = null;

// ---------------------------------------------------------------- helpers

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function bytes(n) {
  if (n === undefined || n === null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0, v = Math.abs(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (n < 0 ? "-" : "") + (i === 0 ? v : v.toFixed(1)) + " " + units[i];
}

function seconds(s) {
  if (s === undefined || s === null) return "–";
  if (s < 1) return Math.round(s * 1000) + " ms";
  if (s < 120) return s.toFixed(1) + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}

function when(t) {
  if (!t) return "–";
  const d = new Date(t);
  const ago = (Date.now() - d.getTime()) / 1000;
  return d.toISOString().replace(".000", "") + " (" + seconds(Math.max(0, ago)) + " ago)";
}

// clip shortens a long value for a table cell.
function clip(v) {
  return v.length > 600 ? v.slice(0, 600) + " … (" + v.length + " characters)" : v;
}

function badge(text) { return el("span", { class: "badge " + text, "data-state": text }, text); }

function flash(text, bad) {
  const f = document.getElementById("flash");
  f.replaceChildren(el("p", { class: bad ? "bad" : "" }, text));
  setTimeout(() => { if (f.firstChild && f.firstChild.textContent === text) f.replaceChildren(); }, 8000);
}

class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function call(method, path, body) {
  const opts = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
  if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(api + path, opts);
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  if (resp.status === 401 && path !== "/session") {
    showSignIn();
    throw new APIError(401, "signed out");
  }
  if (!resp.ok) throw new APIError(resp.status, (data && data.error) || resp.statusText);
  return data;
}

// confirm opens the confirmation dialog and resolves to true on Confirm.
function confirmAction(title, text, okLabel) {
  const d = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = okLabel || "Confirm";
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.returnValue = "cancel";
    d.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

function route() {
  const h = location.hash.replace(/^#\/?/, "") || "overview";
  const [path, qs] = h.split("?");
  return { parts: path.split("/").map(decodeURIComponent), params: new URLSearchParams(qs || "") };
}

// ---------------------------------------------------------------- session

function showSignIn() {
  me = null;
  clearInterval(timer);
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("who").textContent = "";
  document.getElementById("page").hidden = true;
  document.getElementById("sign-in").hidden = false;
  document.getElementById("token").focus();
}

function signedIn(info) {
  me = info;
  if (info.csrf_token) {
    csrf = info.csrf_token;
    sessionStorage.setItem("outbox-cdc-csrf", csrf);
  }
  document.getElementById("sign-in").hidden = true;
  document.getElementById("nav").hidden = false;
  document.getElementById("sign-out").hidden = info.method === "none";
  document.getElementById("who").textContent = info.name + " (" + info.role + ")";
  render();
}

async function signIn(ev) {
  ev.preventDefault();
  const f = ev.target;
  const out = document.getElementById("sign-in-error");
  out.textContent = "";
  const body = f.token.value ? { token: f.token.value } : { username: f.username.value, password: f.password.value };
  try {
    const info = await call("POST", "/session", body);
    f.reset();
    signedIn(info);
  } catch (e) {
    out.textContent = e.message;
  }
}

async function signOut() {
  try { await call("DELETE", "/session"); } catch (e) { /* signed out anyway */ }
  sessionStorage.removeItem("outbox-cdc-csrf");
  csrf = "";
  showSignIn();
}

// ---------------------------------------------------------------- pages

function setPage(name, ...children) {
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.page === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const p = document.getElementById("page");
  p.hidden = false;
  p.dataset.page = name;
  p.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

async function render() {
  if (!me) return;
  clearInterval(timer);
  const r = route();
  try {
    switch (r.parts[0]) {
      case "sinks": await sinksPage(); timer = setInterval(() => refresh(sinksPage), 2000); break;
      case "events": r.parts[1] ? await eventPage(r.parts[1], r.params) : await eventsPage(r.params); break;
      case "dead-letters": r.parts[1] ? await letterPage(r.parts[1]) : await lettersPage(r.params); break;
      default: await overviewPage(); timer = setInterval(() => refresh(overviewPage), 2000);
    }
  } catch (e) {
    if (e.status !== 401) setPage(r.parts[0], el("h1", {}, "Error"), el("p", { class: "error" }, e.message));
  }
}

// refresh redraws a live page unless a dialog is open or focus would be lost.
async function refresh(page) {
  if (document.getElementById("confirm").open) return;
  const focused = document.activeElement && document.activeElement.id;
  try { await page(); } catch (e) { /* shown on the next navigation */ }
  if (focused) { const f = document.getElementById(focused); if (f) f.focus(); }
}

function figure(label, value, sub, id) {
  return el("div", { class: "card figure", id }, el("div", { class: "label" }, label),
    el("div", { class: "value", "data-testid": id }, value), sub ? el("div", { class: "sub" }, sub) : null);
}

async function overviewPage() {
  const [st, hist] = await Promise.all([call("GET", "/status"), call("GET", "/history")]);
  const s = st.slot;
  const holder = s.holder ? s.holder.application_name + " pid " + s.holder.pid + (s.holder.client_addr ? " from " + s.holder.client_addr : "") : "nobody";
  setPage("overview",
    el("h1", {}, "Overview"),
    el("div", { class: "grid" },
      figure("Role", badge(st.role), "since " + when(st.since), "role"),
      figure("Slot lag", bytes(s.lag_bytes), s.lag_bytes + " bytes behind the server's WAL", "lag-bytes"),
      figure("Oldest unacknowledged", seconds(s.lag_seconds), st.inflight_events + " events in flight (" + bytes(st.inflight_bytes) + ")", "lag-seconds"),
      figure("Retained WAL", bytes(s.retained_wal_bytes), "wal_status " + (s.wal_status || "–"), "retained"),
      figure("Confirmed LSN", s.confirmed_lsn, "server confirmed_flush_lsn " + (s.confirmed_flush_lsn || "–"), "confirmed-lsn"),
      figure("Slot", s.name, "publication " + s.publication + "; held by " + holder, "slot"),
      figure("Version", st.version || "dev", "up " + seconds(st.uptime_seconds), "version")),
    s.error ? el("p", { class: "error" }, "Slot figures: " + s.error) : null,
    el("h2", {}, "Slot lag, last minutes"),
    chart(hist.samples, [{ name: "lag", value: (x) => x.lag_bytes }], bytes, "chart-lag"),
    el("h2", {}, "Throughput per sink (events/s)"),
    chart(hist.samples, st.sinks.map((k) => ({ name: k.name, value: (x) => (x.rates && x.rates[k.name]) || 0 })), (v) => v.toFixed(v < 10 ? 1 : 0), "chart-rate"),
    el("h2", {}, "Sinks"),
    sinkTable(st.sinks, false));
}

// chart draws lines over the samples as SVG.
function chart(samples, series, fmt, id) {
  const W = 900, H = 180, L = 70, R = 10, T = 10, B = 24;
  const box = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", id, "aria-label": series.map((s) => s.name).join(", ") + " over the last minutes" });
  const n = samples.length;
  let top = 0;
  for (const s of series) for (const x of samples) top = Math.max(top, s.value(x));
  if (top === 0) top = 1;
  box.append(svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }), svg("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
  for (const f of [0, 0.5, 1]) {
    const y = H - B - f * (H - B - T);
    const t = svg("text", { x: L - 6, y: y + 4, "text-anchor": "end" });
    t.textContent = fmt(top * f);
    box.append(t);
  }
  if (n > 1) {
    const t0 = new Date(samples[0].time).getTime(), t1 = new Date(samples[n - 1].time).getTime();
    const span = Math.max(1, t1 - t0);
    const label = svg("text", { x: L, y: H - 6 });
    label.textContent = "-" + seconds(span / 1000);
    const now = svg("text", { x: W - R, y: H - 6, "text-anchor": "end" });
    now.textContent = "now";
    box.append(label, now);
    series.forEach((s, i) => {
      const pts = samples.map((x) => {
        const px = L + ((new Date(x.time).getTime() - t0) / span) * (W - L - R);
        const py = H - B - (s.value(x) / top) * (H - B - T);
        return px.toFixed(1) + "," + py.toFixed(1);
      });
      box.append(svg("polyline", { points: pts.join(" "), class: "s" + (i % 5), fill: "none", "stroke-width": "2" }));
    });
  }
  const legend = el("div", { class: "legend" }, series.map((s, i) => el("span", {}, el("span", { class: "swatch s" + (i % 5) }), s.name)));
  return el("div", {}, box, legend);
}

function sinkTable(sinks, actions) {
  const operator = me && me.role === "operator";
  return el("table", { id: "sinks-table" },
    el("thead", {}, el("tr", {}, ["Sink", "Type", "State", "Pending", "Acknowledged", "Last error", actions ? "Action" : null].filter(Boolean).map((h) => el("th", {}, h)))),
    el("tbody", {}, sinks.map((k) => el("tr", { "data-sink": k.name },
      el("td", {}, el("strong", {}, k.name), el("div", { class: "muted" }, k.destination || "")),
      el("td", {}, k.type),
      el("td", {}, badge(k.state)),
      el("td", { "data-testid": "pending-" + k.name }, String(k.pending)),
      el("td", { "data-testid": "acked-" + k.name }, String(k.acknowledged), el("div", { class: "muted" }, "up to " + k.acknowledged_lsn)),
      el("td", { class: "wrap" }, k.last_error ? [el("span", { class: "error" }, k.last_error), el("div", { class: "muted" }, "since " + when(k.last_error_since))] : "–"),
      actions ? el("td", {}, k.paused
        ? el("button", { type: "button", id: "resume-" + k.name, disabled: !operator, onclick: () => steer(k.name, "resume") }, "Resume")
        : el("button", { type: "button", class: "secondary", id: "pause-" + k.name, disabled: !operator, onclick: () => steer(k.name, "pause") }, "Pause")) : null))));
}

async function sinksPage() {
  const st = await call("GET", "/status");
  setPage("sinks",
    el("h1", {}, "Sinks"),
    el("p", { class: "muted" }, "Slot lag " + bytes(st.slot.lag_bytes) + ", retained WAL " + bytes(st.slot.retained_wal_bytes) + ", confirmed " + st.slot.confirmed_lsn + "."),
    sinkTable(st.sinks, true));
}

async function steer(name, verb) {
  if (verb === "pause") {
    const ok = await confirmAction("Pause sink " + name + "?",
      "While the sink is paused its events stay unacknowledged: the replication slot does not move, and the server keeps every WAL segment written meanwhile (watch retained WAL and disk space). Nothing is lost; the pause ends on Resume or when outbox-cdc restarts.", "Pause");
    if (!ok) return;
  }
  try {
    await call("POST", "/sinks/" + encodeURIComponent(name) + "/" + verb);
    flash("Sink " + name + (verb === "pause" ? " paused." : " resumed."));
  } catch (e) {
    flash(e.message, true);
  }
  await sinksPage();
}

async function eventsPage(params) {
  const fields = [["id", "Event id"], ["aggregate_id", "Aggregate id"], ["aggregate_type", "Aggregate type"], ["type", "Type"], ["from", "From (time)"], ["to", "To (time)"]];
  const form = el("form", { class: "filters", id: "event-search", onsubmit: (ev) => {
    ev.preventDefault();
    const p = {};
    for (const [k] of fields) p[k] = ev.target[k].value.trim();
    location.hash = "#/events" + query(p);
  } }, fields.map(([k, label]) => el("div", {}, el("label", { for: "f-" + k }, label), el("input", { id: "f-" + k, name: k, value: params.get(k) || "" }))),
  el("div", {}, el("button", { type: "submit", id: "search-button" }, "Search")));
  const p = Object.fromEntries(params.entries());
  const page = await call("GET", "/events" + query(p));
  const rows = page.events.map((e) => el("tr", {},
    el("td", {}, el("a", { href: "#/events/" + encodeURIComponent(e.id) + query({ table: e.table }), class: "mono" }, e.id)),
    el("td", {}, e.type), el("td", {}, e.aggregate_type || "–"), el("td", {}, e.aggregate_id || "–"),
    el("td", {}, e.time ? new Date(e.time).toISOString() : "–")));
  setPage("events", el("h1", {}, "Events"), form,
    el("p", { class: "muted", id: "search-time" }, page.events.length + (page.events.length === 1 ? " event, " : " events, ") + page.server_ms.toFixed(1) + " ms in the database"),
    el("table", { id: "events-table" }, el("thead", {}, el("tr", {}, ["Id", "Type", "Aggregate type", "Aggregate id", "Time"].map((h) => el("th", {}, h)))), el("tbody", {}, rows)),
    page.next ? el("p", {}, el("a", { href: "#/events" + query({ ...p, cursor: page.next }), id: "next-page" }, "Next page →")) : null);
  document.getElementById("f-id").focus();
}

function kv(pairs) {
  return el("dl", { class: "kv" }, pairs.filter((p) => p[1] !== undefined && p[1] !== "").map(([k, v]) => [el("dt", {}, k), el("dd", { class: "mono" }, v)]));
}

function bindingView(b) {
  const operator = me && me.role === "operator";
  const head = el("h3", {}, b.sink + " (" + b.type + (b.mode ? ", " + b.mode + " mode" : "") + ")");
  if (!b.routed) return el("div", { class: "card binding", "data-sink": b.sink }, head, el("p", { class: "muted" }, "The sink's route does not take this event."));
  if (b.error) return el("div", { class: "card binding", "data-sink": b.sink }, head, el("p", { class: "error" }, b.error));
  const label = b.type === "redis" ? "Fields" : "Headers";
  return el("div", { class: "card binding", "data-sink": b.sink, id: "binding-" + b.sink }, head,
    kv([[b.destination_kind, b.destination], ["stream", b.stream], ["key", b.key]]),
    b.headers && b.headers.length ? el("table", { class: "headers" }, el("thead", {}, el("tr", {}, el("th", {}, label), el("th", {}, "Value"))),
      el("tbody", {}, b.headers.map((h) => el("tr", {}, el("td", { class: "mono" }, h.name), el("td", { class: "mono wrap" }, h.value))))) : null,
    b.body ? [el("div", { class: "muted" }, b.type === "kafka" ? "Value" : b.type === "nats" ? "Payload" : "Line"), el("pre", {}, b.body_encoding === "base64" ? "(base64) " + b.body : b.body)] : null,
    el("div", { class: "actions" }, el("button", { type: "button", class: "secondary", id: "republish-" + b.sink, disabled: !operator, onclick: () => republish(b) }, "Republish to " + b.sink)));
}

let current = null;

async function eventPage(id, params) {
  const d = await call("GET", "/events/" + encodeURIComponent(id) + query({ table: params.get("table") }));
  current = d;
  setPage("events",
    el("p", {}, el("a", { href: "#/events" }, "← Events")),
    el("h1", {}, "Event ", el("span", { class: "mono", id: "event-id" }, id)),
    el("p", { class: "muted" }, "Table " + d.table + ". " + d.note),
    d.invalid ? el("p", { class: "error" }, "This row cannot become a CloudEvent: " + d.invalid) : null,
    d.dead_letters.length ? el("div", { class: "warning" }, "Dead letters for this event: ",
      d.dead_letters.map((l) => el("a", { href: "#/dead-letters/" + l.id }, "#" + l.id + " (" + l.sink + ", " + l.state + ") "))) : null,
    el("h2", {}, "As each sink sends it"),
    el("div", {}, d.sinks.map(bindingView)),
    el("h2", {}, "CloudEvent"),
    el("pre", { id: "event-json" }, d.event ? JSON.stringify(d.event, null, 2) : "–"),
    el("h2", {}, "Outbox row"),
    el("table", {}, el("tbody", {}, d.row.map((c) => el("tr", {}, el("th", {}, c.name), el("td", { class: "mono wrap" }, c.value === null ? "NULL" : clip(c.value)))))));
}

async function republish(b) {
  const id = document.getElementById("event-id").textContent;
  const ok = await confirmAction("Republish to " + b.sink + "?",
    "Event " + id + " is sent again, with its id, to " + b.destination_kind + " " + b.destination + ". Consumers that do not deduplicate by id see it twice.", "Republish");
  if (!ok) return;
  try {
    const r = await call("POST", "/events/" + encodeURIComponent(id) + "/republish" + query({ sink: b.sink, table: current && current.table }));
    flash("Event " + id + " republished to " + b.sink + (r.duplicate ? " (the broker already held it)." : "."));
  } catch (e) {
    flash(e.message, true);
  }
}

async function lettersPage(params) {
  const p = Object.fromEntries(params.entries());
  const st = await call("GET", "/status");
  const form = el("form", { class: "filters", id: "letter-filter", onsubmit: (ev) => {
    ev.preventDefault();
    location.hash = "#/dead-letters" + query({ sink: ev.target.sink.value, state: ev.target.state.value, q: ev.target.q.value.trim() });
  } },
  el("div", {}, el("label", { for: "l-sink" }, "Sink"), el("select", { id: "l-sink", name: "sink" }, el("option", { value: "" }, "every sink"),
    st.sinks.map((k) => el("option", { value: k.name, selected: p.sink === k.name }, k.name)))),
  el("div", {}, el("label", { for: "l-state" }, "State"), el("select", { id: "l-state", name: "state" },
    ["", "pending", "replayed", "discarded"].map((s) => el("option", { value: s, selected: (p.state || "") === s }, s || "any")))),
  el("div", {}, el("label", { for: "l-q" }, "Event id or error text"), el("input", { id: "l-q", name: "q", value: p.q || "" })),
  el("div", {}, el("button", { type: "submit", id: "filter-button" }, "Filter")));
  const page = await call("GET", "/dead-letters" + query(p));
  const operator = me && me.role === "operator";
  const bulk = (verb) => async () => {
    const ok = await confirmAction(verb === "replay" ? "Replay every pending dead letter shown by this filter?" : "Discard every pending dead letter shown by this filter?",
      verb === "replay" ? "Each is published again through its sink and marked replayed once acknowledged." : "Each is marked discarded; the rows are kept.", verb === "replay" ? "Replay all" : "Discard all");
    if (!ok) return;
    try {
      const r = await call("POST", "/dead-letters/" + verb + query({ sink: p.sink, q: p.q }));
      flash(r.done + " of " + r.matched + " dead letters " + (verb === "replay" ? "replayed" : "discarded") + (r.failed ? "; " + r.failed + " failed: " + (r.errors || []).join("; ") : "."), r.failed > 0);
    } catch (e) { flash(e.message, true); }
    render();
  };
  setPage("dead-letters", el("h1", {}, "Dead letters"), form,
    el("table", { id: "letters-table" }, el("thead", {}, el("tr", {}, ["Id", "Sink", "Event", "State", "Attempts", "Last failure", "Error"].map((h) => el("th", {}, h)))),
      el("tbody", {}, page.dead_letters.map((l) => el("tr", { "data-letter": l.id },
        el("td", {}, el("a", { href: "#/dead-letters/" + l.id }, "#" + l.id)), el("td", {}, l.sink || "(decoder)"),
        el("td", { class: "mono" }, l.event_id), el("td", {}, badge(l.state)), el("td", {}, String(l.attempts)),
        el("td", {}, new Date(l.last_failed_at).toISOString()), el("td", { class: "wrap error" }, l.error))))),
    page.dead_letters.length === 0 ? el("p", { class: "muted" }, "No dead letters match.") : null,
    page.next ? el("p", {}, el("a", { href: "#/dead-letters" + query({ ...p, cursor: page.next }) }, "Next page →")) : null,
    el("div", { class: "actions" },
      el("button", { type: "button", class: "secondary", id: "bulk-discard", disabled: !operator, onclick: bulk("discard") }, "Discard all pending shown"),
      el("button", { type: "button", id: "bulk-replay", disabled: !operator, onclick: bulk("replay") }, "Replay all pending shown")));
}

async function letterPage(id) {
  const l = await call("GET", "/dead-letters/" + encodeURIComponent(id));
  const operator = me && me.role === "operator";
  const pending = l.status === "pending";
  const act = (verb) => async () => {
    const ok = await confirmAction(verb === "replay" ? "Replay dead letter #" + l.id + "?" : "Discard dead letter #" + l.id + "?",
      verb === "replay" ? "The event is published again through sink " + l.sink + " and marked replayed once the broker acknowledges it. If it fails again its attempts are counted."
        : "The dead letter is marked discarded (the row is kept); its event is not delivered.", verb === "replay" ? "Replay" : "Discard");
    if (!ok) return;
    try {
      await call("POST", "/dead-letters/" + l.id + "/" + verb);
      flash("Dead letter #" + l.id + (verb === "replay" ? " replayed." : " discarded."));
    } catch (e) { flash(e.message, true); }
    render();
  };
  setPage("dead-letters",
    el("p", {}, el("a", { href: "#/dead-letters" }, "← Dead letters")),
    el("h1", {}, "Dead letter #" + l.id + " ", el("span", { id: "letter-state" }, badge(l.status))),
    el("div", { class: "card" }, kv([["sink", l.sink || "(decoder)"], ["event id", l.event_id], ["source", l.event_source], ["table", l.source_table],
      ["commit LSN", l.commit_lsn], ["attempts", String(l.attempts)], ["first failure", when(l.first_failed_at)], ["last failure", when(l.last_failed_at)],
      ["resolved", l.resolved_at ? when(l.resolved_at) + " by " + l.resolved_by : ""]])),
    el("h2", {}, "The broker's error"),
    el("pre", { class: "error", id: "letter-error" }, l.error),
    el("h2", {}, l.event ? "Event" : "Raw row"),
    el("pre", {}, JSON.stringify(l.event || l.raw, null, 2)),
    l.event ? el("p", {}, el("a", { href: "#/events/" + encodeURIComponent(l.event_id) }, "Find this event in the outbox")) : null,
    el("div", { class: "actions" },
      el("button", { type: "button", class: "secondary", id: "discard-letter", disabled: !operator || !pending, onclick: act("discard") }, "Discard"),
      el("button", { type: "button", id: "replay-letter", disabled: !operator || !pending || !l.event, onclick: act("replay") }, "Replay")));
}

// ---------------------------------------------------------------- start

document.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("sign-in-form").addEventListener("submit", signIn);
  document.getElementById("sign-out").addEventListener("click", signOut);
  // A message belongs to the page it was shown on.
  window.addEventListener("hashchange", () => { document.getElementById("flash").replaceChildren(); render(); });
  try {
    signedIn(await call("GET", "/session"));
  } catch (e) {
    if (e.status !== 401) flash(e.message, true);
    showSignIn();
  }
});

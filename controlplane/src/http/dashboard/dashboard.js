// Tollgate's dashboard: draws each snapshot the node sends on /api/events.
"use strict";

const errors = document.getElementById("errors");
window.addEventListener("error", (e) => {
  errors.hidden = false;
  errors.textContent += String(e.message) + "\n";
});

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function fixed(v, digits) {
  return typeof v === "number" ? v.toFixed(digits) : "–";
}

function row(cells) {
  const tr = el("tr");
  for (const c of cells) tr.appendChild(c instanceof Node ? c : el("td", c));
  return tr;
}

function fill(id, rows) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...rows);
}

function drawCalls(calls) {
  document.getElementById("active-calls").textContent = String(calls.length);
  const rows = [];
  for (const c of calls) {
    c.legs.forEach((leg, i) => {
      const m = leg.media || {};
      const mos = el("td", fixed(m.mos, 2), m.mos >= 3.6 ? "ok" : m.mos ? "bad" : "dim");
      rows.push(row([
        i === 0 ? c.call_id.slice(0, 18) : "",
        i === 0 ? c.from_number || "" : "",
        i === 0 ? c.to_number || "" : "",
        i === 0 ? c.state : "",
        leg.leg, m.packets ?? "–", m.lost ?? "–", fixed(m.jitter_ms, 1), mos,
      ]));
    });
  }
  fill("calls", rows);
}

function chart(id, values, color) {
  const canvas = document.getElementById(id);
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(1, ...values);
  ctx.strokeStyle = "#2a333d";
  ctx.beginPath(); ctx.moveTo(0, h - 0.5); ctx.lineTo(w, h - 0.5); ctx.stroke();
  ctx.fillStyle = "#8a96a3";
  ctx.font = "12px sans-serif";
  ctx.fillText(String(Math.round(max * 10) / 10), 4, 12);
  if (values.length < 2) return;
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.beginPath();
  values.forEach((v, i) => {
    const x = (i / (values.length - 1)) * w;
    const y = h - 2 - (v / max) * (h - 16);
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

function drawWorkers(s) {
  const box = document.getElementById("workers");
  if (!s.workers.length) {
    box.replaceChildren(el("div", s.dataplane_up ? "no packet workers: the kernel (XDP) forwards" : "data plane not answering", "dim"));
    return;
  }
  const parts = [];
  for (const w of s.workers) {
    const pct = Math.round(w.busy * 1000) / 10;
    const head = el("div", null, "row");
    head.append(el("span", "worker " + w.worker + " · core " + w.core + " · " + w.flows + " flows"),
      el("span", pct + "% · " + Math.round(w.rx_pps) + " pps"));
    const bar = el("div", null, "bar");
    const fillBar = el("span");
    fillBar.style.width = Math.min(100, pct) + "%";
    bar.appendChild(fillBar);
    parts.push(head, bar);
  }
  box.replaceChildren(...parts);
}

function drawCodes(codes) {
  const box = document.getElementById("codes");
  const entries = Object.entries(codes);
  if (!entries.length) { box.replaceChildren(el("div", "none yet", "dim")); return; }
  box.replaceChildren(...entries.map(([code, n]) => {
    const r = el("div", null, "row");
    r.append(el("span", code, Number(code) >= 400 ? "bad" : ""), el("span", n));
    return r;
  }));
}

function drawSpool(sp) {
  const lines = [["depth", sp.depth], ["bytes", sp.bytes], ["alarm", sp.alarm ? "yes" : "no"]];
  for (const k of sp.sinks) lines.push(["sink " + k.name + " lag", k.lag + (k.last_error ? " (" + k.last_error + ")" : "")]);
  document.getElementById("spool").replaceChildren(...lines.map(([k, v]) => {
    const r = el("div", null, "row");
    r.append(el("span", k, "dim"), el("span", v));
    return r;
  }));
}

function drawArchive(a) {
  const box = document.getElementById("archive");
  if (!a) { box.replaceChildren(el("div", "uploader not running", "dim")); return; }
  const lines = [
    ["queued", a.depth + (a.over_watermark ? " (over watermark " + a.watermark + ")" : "")],
    ["oldest", a.oldest || "-"],
    ["archived", a.archived],
    ["failed", a.failed],
    ["last error", a.last_error || "none"],
  ];
  box.replaceChildren(...lines.map(([k, v]) => {
    const r = el("div", null, "row");
    r.append(el("span", k, "dim"), el("span", v, k === "queued" && a.over_watermark ? "bad" : ""));
    return r;
  }));
}

function drawGateways(gws) {
  const box = document.getElementById("gateways");
  if (!gws.length) { box.replaceChildren(el("div", "no LCR gateways", "dim")); return; }
  box.replaceChildren(...gws.map((g) => {
    const r = el("div", null, "row");
    const state = g.up === false ? ["down", "bad"] : g.up ? ["up", "ok"] : ["not pinged", "dim"];
    r.append(el("span", (g.carrier || "gateway " + g.id) + " " + g.addr), el("span", state[0], state[1]));
    return r;
  }));
}

function drawCdrs(cdrs) {
  fill("cdrs", cdrs.map((c) => {
    const mos = (c.legs || []).map((l) => fixed(l.received && l.received.mos, 1)).join(" / ");
    const secs = Math.max(0, Math.round((c.end_ms - (c.answer_ms || c.end_ms)) / 1000));
    return row([new Date(c.end_ms).toLocaleTimeString(), c.call_id.slice(0, 18), c.from_number, c.to_number,
      c.status || "", c.sip_code ?? "", secs, mos]);
  }));
}

function draw(s) {
  drawCalls(s.calls);
  document.getElementById("cps").textContent = fixed(s.cps, 1);
  chart("cps-chart", s.history.map((h) => h.cps), "#58a6ff");
  chart("active-chart", s.history.map((h) => h.active_calls), "#3fb950");
  const backend = document.getElementById("backend");
  backend.textContent = s.backend ? "data plane: " + s.backend : "data plane down";
  backend.className = "badge " + (s.dataplane_up ? "up" : "down");
  drawWorkers(s);
  drawCodes(s.sip_codes);
  drawSpool(s.spool);
  drawArchive(s.archive);
  drawGateways(s.gateways);
  drawCdrs(s.cdrs);
  document.body.dataset.updated = String(s.at_ms);
}

function connect() {
  const token = new URLSearchParams(location.search).get("access_token");
  const url = "api/events" + (token ? "?access_token=" + encodeURIComponent(token) : "");
  const link = document.getElementById("link");
  const source = new EventSource(url);
  source.addEventListener("snapshot", (e) => {
    link.textContent = "live";
    link.className = "badge up";
    draw(JSON.parse(e.data));
  });
  source.onerror = () => {
    link.textContent = "reconnecting";
    link.className = "badge down";
  };
}

connect();

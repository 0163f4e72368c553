// The fleet view: clusters, hosts, VMs and jobs, each a page read once and then kept
// current by the event stream (a row changes in place; nothing polls).
"use strict";

import {esc, page} from "./api.js";

const PAGE = 200, JOBS = 25;
const cell = (v) => `<td>${esc(v)}</td>`;
const badge = (s) => `<td><span class="state ${esc(String(s).replace(/ /g, "-"))}">${esc(s)}</span></td>`;
const btn = (act, label, extra = "") => `<button data-act="${act}" ${extra}>${esc(label)}</button>`;
const FINAL = new Set(["Completed", "Terminated", "Killed", "Exception"]);

// A move's figures: live ones while it copies, the prediction before, the outcome after.
export function figures(p) {
  const r = p.result, q = p.prediction;
  if (r) return `downtime ${r.downtime_ms} ms, total ${(r.total_ms / 1000).toFixed(1)} s, `
    + `${r.memory_mib} MiB memory` + (r.disk_mib ? `, ${r.disk_mib} MiB disk` : "")
    + `, ${r.iterations} passes` + (r.strategy?.length ? `; ${r.strategy.join("; ")}` : "");
  if (p.remaining_mib !== undefined) return `${p.remaining_mib} MiB left at ${p.rate_mib_s} MiB/s`
    + (p.eta_s != null ? ` (~${p.eta_s} s left)` : " (not shrinking)")
    + `, dirtying ${p.dirty_mib_s} MiB/s, pass ${p.iteration}, downtime ≤ ${p.downtime_limit_ms} ms`;
  if (q) return `predicted: ${q.verdict}`;
  return "";
}

// A drain or a failover: one bar per VM, from the parent job's children.
export function children(p) {
  if (!p.children?.length) return "";
  return `<div class="children">` + p.children.map((c) => {
    const pct = FINAL.has(c.state) || c.state === "Completed" ? 100 : Number(c.percent || 0);
    return `<div>${esc(c.vm)} ${esc(c.action)}${c.to ? " → " + esc(c.to) : ""} `
      + `<span class="bar"><div style="width:${pct}%"></div></span> ${esc(c.state)} ${esc(c.phase || "")}</div>`;
  }).join("") + `</div>`;
}

const ROWS = {
  cluster: (c) => cell(c.name) + cell(c.hosts) + cell(c.vms) + cell(c.reserve)
    + `<td class="wrap">${verdict(c.overcommit)}</td>`
    + cell(c.unsupported) + cell(c.postcopy) + `<td>${btn("reserve", "Reserve…")}</td>`,
  host: (h) => cell(h.name) + cell(h.cluster || "-") + badge(h.state)
    + cell(h.state_since ? new Date(h.state_since).toLocaleTimeString() : "-")
    + `<td class="wrap">${esc(h.state_reason)}</td>`
    + cell(`${h.free_memory_mib} / ${h.memory_mib} MiB`) + cell(h.vms)
    + (h.maintenance ? badge("maintenance") : cell("-"))
    + `<td>${h.maintenance ? btn("maintenance-stop", "End maintenance…") : btn("maintenance-start", "Maintenance…")}`
    + (["lost", "not-responding", "isolated"].includes(h.state) ? btn("fence-confirm", "Confirm off…") : "") + `</td>`,
  vm: (v) => `<td><a href="#/vm/${encodeURIComponent(v.name)}">${esc(v.name)}</a></td>` + cell(v.host || "-")
    + cell(v.cluster || "-") + badge(v.state) + cell(`${v.memory_mib} MiB`)
    + cell(v.ha ? `on (priority ${v.ha_priority})` : "off")
    + (v.unsupported_cluster_configuration ? badge("unsupported") : cell(countOf(v)))
    + `<td>${btn("migrate", "Migrate…")}`
    + (v.state === "running" ? btn("stop", "Stop") + btn("save", "Save")
      : v.state === "saved" ? btn("restore", "Restore") : btn("start", "Start"))
    + btn("ha", "HA…") + btn("delete", "Delete…") + `</td>`,
  job: (j) => `<td><a href="#/job/${j.id}">${j.id}</a></td>` + cell(j.kind) + cell(j.subject) + cell(j.user)
    + badge(j.state) + `<td><span class="bar"><div style="width:${Number(j.percent)}%"></div></span> ${Number(j.percent)}%</td>`
    + cell(j.phase) + `<td class="wrap">${esc(figures(j.progress || {}))}${children(j.progress || {})}</td>`
    + `<td class="err">${esc(j.error?.code)}</td>`
    + `<td>${FINAL.has(j.state) ? "" : btn("cancel", "Cancel")}</td>`,
};
// The reserve verdict: whether the cluster absorbs its reserve of failed nodes, and
// which HA VMs a failure would strand when it does not.
function verdict(o) {
  if (!o) return "not checked yet";
  if (!o.overcommitted) return `holds: ${o.nodes_up} node(s) up absorb ${o.reserve} failure(s)`;
  return `<span class="state error">over-committed</span> ${esc(o.reason)}`
    + (o.stranded?.length ? `; a failure strands ${esc(o.stranded.join(", "))}` : "");
}
const countOf = (v) => (Array.isArray(v.findings) ? v.findings.length : v.findings) || "-";

// One table: its rows by key, the filters it was read with, and its page cursors.
class Table {
  constructor(kind, body, key, path) {
    Object.assign(this, {kind, body: document.getElementById(body), key, path, rows: new Map(),
      cursors: [""], full: false, filter: () => true});
  }
  async load(query = "") {
    const cur = this.cursors[this.cursors.length - 1];
    const sep = this.path.includes("?") ? "&" : "?";
    const {body, next} = await page(`${this.path}${sep}${query}${cur ? "&cursor=" + encodeURIComponent(cur) : ""}`);
    this.next = next; this.full = Boolean(next); this.rows.clear();
    this.body.innerHTML = "";
    for (const r of body) this.put(r, false, true);
    return body.length;
  }
  // A row of the page read (``listed``), or of the stream: one it has not shown yet
  // is added only if it belongs on this page with these filters.
  put(r, flash = true, listed = false) {
    const k = String(r[this.key]);
    let tr = this.rows.get(k)?.tr;
    if (!tr) {
      if (!listed && !this.filter(r)) return;
      tr = document.createElement("tr");
      tr.dataset.name = k;
      if (this.kind === "job" && flash) this.body.prepend(tr);  // a new job: newest first
      else this.body.append(tr);
    }
    tr.innerHTML = ROWS[this.kind](r);
    this.rows.set(k, {tr, row: r});
    if (flash) { tr.classList.remove("flash"); void tr.offsetWidth; tr.classList.add("flash"); }
  }
  drop(k) { const e = this.rows.get(String(k)); if (e) { e.tr.remove(); this.rows.delete(String(k)); } }
  row(k) { return this.rows.get(String(k))?.row; }
}

export const tables = {
  cluster: new Table("cluster", "clusters", "name", "/clusters"),
  host: new Table("host", "hosts", "name", `/hosts?limit=${PAGE}`),
  vm: new Table("vm", "vms", "name", `/vms?limit=${PAGE}`),
  job: new Table("job", "jobs", "id", `/jobs?limit=${JOBS}`),
};

// The clusters list gives full views; the table shows the counts the stream sends.
function clusterRow(c) {
  return {...c, hosts: c.hosts.length, vms: c.vms.length, unsupported: c.unsupported.length};
}

const value = (id) => document.getElementById(id).value.trim();
function query(pairs) {
  return Object.entries(pairs).filter(([, v]) => v).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&");
}

export async function loadAll() {
  const {body} = await page("/clusters");
  tables.cluster.rows.clear(); tables.cluster.body.innerHTML = "";
  body.forEach((c) => tables.cluster.put(clusterRow(c), false, true));
  const sel = document.getElementById("vm-cluster"), chosen = sel.value;
  sel.innerHTML = `<option value="">any cluster</option>` + body.map((c) => `<option>${esc(c.name)}</option>`).join("");
  sel.value = chosen;
  await Promise.all([loadHosts(), loadVms(), tables.job.load()]);
}

export async function loadHosts() {
  const m = value("host-match"), st = value("host-state");
  tables.host.filter = (h) => (!m || h.name.includes(m)) && (!st || h.state === st) && inPage(tables.host, h.name);
  const n = await tables.host.load(query({match: m, state: st}));
  pager("hosts", tables.host, n, loadHosts);
}

export async function loadVms() {
  const m = value("vm-match"), c = value("vm-cluster"), st = value("vm-state");
  tables.vm.filter = (v) => (!m || v.name.includes(m)) && (!c || v.cluster === c)
    && (!st || v.state === st) && inPage(tables.vm, v.name);
  const n = await tables.vm.load(query({match: m, cluster: c, state: st}));
  pager("vms", tables.vm, n, loadVms);
}

// A new row belongs on this page if the page is the last one or it sorts within it.
function inPage(t, name) {
  const keys = [...t.rows.keys()];
  return !t.full || (keys.length && name < keys[keys.length - 1]);
}

function pager(id, t, n, reload) {
  const el = document.getElementById(id + "-pager");
  const pageNo = t.cursors.length;
  el.innerHTML = `page ${pageNo}, ${n} shown ` + (pageNo > 1 ? `<button data-p="prev">Previous</button>` : "")
    + (t.next ? `<button data-p="next">Next</button>` : "");
  el.onclick = (ev) => {
    const p = ev.target.dataset?.p;
    if (p === "next") t.cursors.push(t.next);
    else if (p === "prev") t.cursors.pop();
    else return;
    reload();
  };
}

// One event of the stream, applied to the tables.
export function apply(type, data) {
  if (type === "gone") return tables[data.kind]?.drop(data.name);
  const t = tables[type];
  if (!t) return;
  t.put(data);
  if (type === "job") while (t.rows.size > JOBS) t.drop(Math.min(...[...t.rows.keys()].map(Number)));
}

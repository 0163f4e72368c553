// A VM's page (its state, findings, heartbeat and move history) and a job's page
// (its steps, their results and evidence).
"use strict";

import {esc, finding, get} from "./api.js";
import {children, figures} from "./fleet.js";

const el = () => document.getElementById("page");
let beat = null;  // the heartbeat poll of the VM page shown; stopped when it closes

export function leave() { if (beat) clearInterval(beat); beat = null; }

export async function vmPage(name) {
  const q = encodeURIComponent(name);
  const [v, moves] = await Promise.all([get(`/vms/${q}`), get(`/jobs?kind=vm.migrate&subject=${q}&limit=50`)]);
  const done = moves.filter((j) => j.state === "Completed" && j.progress?.result).reverse();
  el().innerHTML = `<nav><a href="#/">← fleet</a></nav><h2>VM ${esc(v.name)}</h2>
    <table><tbody>
    <tr><th>State</th><td id="vm-state">${esc(v.state)}</td><th>Host</th><td id="vm-host">${esc(v.host || "-")}</td><th>Cluster</th><td>${esc(v.cluster || "-")}</td></tr>
    <tr><th>Memory</th><td>${v.memory_mib} MiB, ${v.vcpus} vCPU</td><th>HA</th><td>${v.ha ? `on, priority ${v.ha_priority}` : "off"}</td>
      <th>Heartbeat</th><td id="vm-beat">-</td></tr>
    <tr><th>Disks</th><td colspan="5" class="wrap">${v.disks.map((d) => `${esc(d.target)} ${esc(d.path)} (${esc(d.pool)}${d.shared ? ", shared" : ""}${d.backing ? ", linked clone of " + esc(d.backing) : ""})`).join("<br>") || "-"}</td></tr>
    <tr><th>CD-ROM</th><td colspan="5">${v.cdrom ? esc(v.cdrom) + (v.boot_cdrom ? " (boots from it)" : "") : "empty"}</td></tr>
    </tbody></table>
    <h2>Findings</h2>${v.findings.length ? v.findings.map(finding).join("") : "<p>None: the VM can fail over.</p>"}
    <h2>Moves</h2>${chart(done)}
    <table><thead><tr><th>Job</th><th>When</th><th>From → to</th><th>Total</th><th>Downtime</th><th>Memory</th><th>Passes</th><th>State</th></tr></thead><tbody>
    ${moves.map((j) => {
      const r = j.progress?.result || {};
      return `<tr><td><a href="#/job/${j.id}">${j.id}</a></td><td>${esc(new Date(j.created_at).toLocaleString())}</td>
        <td>${esc(j.progress?.source || "?")} → ${esc(j.progress?.dest || "?")}</td>
        <td>${r.total_ms != null ? (r.total_ms / 1000).toFixed(1) + " s" : "-"}</td><td>${r.downtime_ms ?? "-"} ms</td>
        <td>${r.memory_mib ?? "-"} MiB</td><td>${r.iterations ?? "-"}</td><td>${esc(j.state)} ${esc(j.error?.code || "")}</td></tr>`;
    }).join("")}</tbody></table>`;
  const show = async () => {
    try {
      const hb = (await get(`/vms/${q}/heartbeat`)).heartbeat;
      document.getElementById("vm-beat").textContent = hb ? `${hb.counter}${hb.bad ? `, ${hb.bad} stale pages` : ""}` : "none";
    } catch (e) { document.getElementById("vm-beat").textContent = e.message; }
  };
  leave();
  if (v.state === "running") { show(); beat = setInterval(show, 2000); }
}

// Each completed move's total time (bar) and downtime (dot, right axis), oldest first.
function chart(moves) {
  if (!moves.length) return "<p>No completed move yet.</p>";
  const W = 640, H = 160, pad = 34, n = moves.length, bw = Math.min(40, (W - 2 * pad) / n - 4);
  const tMax = Math.max(...moves.map((j) => j.progress.result.total_ms), 1);
  const dMax = Math.max(...moves.map((j) => j.progress.result.downtime_ms), 1);
  const x = (i) => pad + i * ((W - 2 * pad) / n) + 2;
  const parts = moves.map((j, i) => {
    const r = j.progress.result, h = (r.total_ms / tMax) * (H - 30), dy = H - 15 - (r.downtime_ms / dMax) * (H - 30);
    return `<rect x="${x(i)}" y="${H - 15 - h}" width="${bw}" height="${h}" fill="#9cc0ef"><title>job ${j.id}: ${(r.total_ms / 1000).toFixed(1)} s total</title></rect>
      <circle cx="${x(i) + bw / 2}" cy="${dy}" r="4" fill="#b00020"><title>job ${j.id}: ${r.downtime_ms} ms downtime</title></circle>
      <text x="${x(i)}" y="${H - 3}">${j.id}</text>`;
  }).join("");
  return `<svg class="history" width="${W}" height="${H}" role="img" aria-label="move history">
    <text x="0" y="10">${(tMax / 1000).toFixed(1)} s</text><text x="${W - pad + 2}" y="10" fill="#b00020">${dMax} ms</text>
    <line x1="${pad}" y1="${H - 15}" x2="${W - pad}" y2="${H - 15}" stroke="#999"/>${parts}</svg>
    <div class="pager">bars: total time; red dots: downtime</div>`;
}

export async function jobPage(id) {
  leave();
  const j = await get(`/jobs/${encodeURIComponent(id)}`);
  el().innerHTML = `<nav><a href="#/">← fleet</a></nav><h2>Job ${j.id}: ${esc(j.kind)} ${esc(j.subject)}</h2>
    <p>State <span class="state ${esc(j.state)}" id="job-state">${esc(j.state)}</span>, ${j.percent}%, ${esc(j.phase)};
    by ${esc(j.user)}; ${esc(j.message)}</p>
    <p>${esc(figures(j.progress || {}))}</p>${children(j.progress || {})}
    ${j.error ? finding(j.error) : ""}${j.manual_fix ? `<div class="finding error">Manual fix: ${esc(j.manual_fix)}</div>` : ""}
    <h2>Steps</h2><table><thead><tr><th>#</th><th>Step</th><th>State</th><th>Result and evidence</th></tr></thead><tbody>
    ${j.steps.map((s) => `<tr><td>${s.index}</td><td class="wrap">${esc(s.description || s.name)}</td><td>${esc(s.state)}</td>
      <td class="wrap">${s.error ? finding(s.error) : ""}${evidence(s.result)}</td></tr>`).join("")}</tbody></table>`;
  return j;
}

// A step's result: its evidence first (why the manager acted), then the rest.
function evidence(r) {
  if (!r || !Object.keys(r).length) return "";
  const {evidence: ev, ...rest} = r;
  return (ev ? `<div><b>Evidence:</b> ${esc(typeof ev === "string" ? ev : JSON.stringify(ev))}</div>` : "")
    + `<code class="wrap">${esc(JSON.stringify(rest)).slice(0, 600)}</code>`;
}

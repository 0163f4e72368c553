// What an administrator does from the console: each action shows what the manager
// says first (ratings, preflight findings, the drain's plan) and acts on a confirm.
// Every refusal is the API's own, with its code, cause and fix.
"use strict";

import {ApiError, esc, finding, get, post, send} from "./api.js";
import {tables} from "./fleet.js";

const dlg = () => document.getElementById("dialog");
const body = () => document.getElementById("dialog-body");
const $ = (sel) => body().querySelector(sel);

function open(html) { body().innerHTML = html; if (!dlg().open) dlg().showModal(); }
export function close() { if (dlg().open) dlg().close(); }
const buttons = (...b) => `<div class="buttons">${b.join(" ")}<button data-close>Close</button></div>`;
const shownError = (e) => (e instanceof ApiError ? finding(e.error) : `<div class="err">${esc(e.message)}</div>`);

// Run ``act``; a refusal shows in #outcome, a job closes the dialog (the stream shows it).
async function run(act) {
  const out = $("#outcome");
  try {
    const job = await act();
    out.innerHTML = job?.id ? `job <a href="#/job/${job.id}">${job.id}</a> submitted` : "done";
    if (job?.id) { tables.job.put(job); setTimeout(close, 400); }
    return job;
  } catch (e) { out.innerHTML = shownError(e); return null; }
}

async function migrate(vm) {
  const v = tables.vm.row(vm) || await get(`/vms/${encodeURIComponent(vm)}`);
  let rated;
  try { rated = await get(`/vms/${encodeURIComponent(vm)}/placement`); } catch (e) { rated = {ratings: [], error: e}; }
  const clusters = [...tables.cluster.rows.keys()].filter((c) => c !== v.cluster);
  open(`<h3>Move VM ${esc(vm)} from ${esc(v.host || "-")}</h3>
    ${rated.error ? shownError(rated.error) : ""}
    <table><thead><tr><th></th><th>Host</th><th>Rating</th><th>Why</th></tr></thead><tbody>
    ${rated.ratings.filter((r) => r.host !== v.host).map((r) => `<tr><td><input type="radio" name="to" value="${esc(r.host)}"
      ${r.host === rated.best ? "checked" : ""}></td><td>${esc(r.host)}</td><td>${"★".repeat(r.stars)}${"☆".repeat(Math.max(0, 5 - r.stars))}
      ${r.eligible ? "" : `<span class="state error">${esc(r.blocked_by.join(", "))}</span>`}</td>
      <td class="wrap">${esc(r.reasons.join("; "))}</td></tr>`).join("")}</tbody></table>
    <p><label>Kind <select id="kind"><option value="live">live migration</option><option value="quick">quick migration (save, move, restore)</option></select></label>
    <label><input type="checkbox" id="storage"> move its storage too</label>
    <label>or to cluster <select id="to-cluster"><option value="">(this cluster)</option>${clusters.map((c) => `<option>${esc(c)}</option>`).join("")}</select></label></p>
    <p><label>Downtime target <input id="downtime" type="number" value="300" min="1" size="5"> ms</label>
    <label>Bandwidth <input id="bandwidth" type="number" value="0" min="0" size="5"> MiB/s (0: no limit)</label>
    <label><input type="checkbox" id="postcopy"> allow post-copy</label></p>
    <div id="findings"></div><div id="outcome"></div>
    ${buttons(`<button id="check">Check</button>`, `<button id="go" class="primary" disabled>Migrate</button>`)}`);
  const op = () => {
    const to = body().querySelector("input[name=to]:checked")?.value || "";
    const toCluster = $("#to-cluster").value;
    return {to: toCluster ? "" : to, to_cluster: toCluster, quick: $("#kind").value === "quick",
      include_storage: $("#storage").checked, downtime_ms: Number($("#downtime").value),
      bandwidth_mib_s: Number($("#bandwidth").value), postcopy: $("#postcopy").checked,
      ignore: [...body().querySelectorAll("input[data-ignore]:checked")].map((i) => i.dataset.ignore)};
  };
  const path = `/vms/${encodeURIComponent(vm)}/migrate`;
  $("#check").onclick = async () => {
    $("#findings").innerHTML = "checking…"; $("#go").disabled = true;
    try {
      const plan = await post(path + "/check", op());
      const errors = plan.findings.filter((f) => f.severity === "error");
      $("#findings").innerHTML = `<p>Plan: <b>${esc(plan.kind)}</b> ${esc(plan.source)} → <b>${esc(plan.dest)}</b>`
        + (plan.address ? ` over ${esc(plan.address)}` : "") + (plan.disks.length ? `, ${plan.disks.length} disk(s) copied` : "")
        + `</p>` + (plan.findings.length ? plan.findings.map((f) => finding(f)
          + (f.severity === "error" ? `<label><input type="checkbox" data-ignore="${esc(f.code)}"> accept (--ignore ${esc(f.code)}, administrators only)</label>` : "")).join("")
          : "<p>No findings: the move can run.</p>");
      $("#go").disabled = errors.length > 0;
      body().querySelectorAll("input[data-ignore]").forEach((i) => {
        i.onchange = () => { $("#go").disabled = [...body().querySelectorAll("input[data-ignore]")].some((x) => !x.checked); };
      });
    } catch (e) { $("#findings").innerHTML = shownError(e); }
  };
  $("#go").onclick = () => run(() => post(path, op()));
  body().querySelectorAll("input[name=to], select, input[type=checkbox]:not([data-ignore]), input[type=number]")
    .forEach((el) => { el.onchange = () => { $("#go").disabled = true; $("#findings").innerHTML = "check again after a change"; }; });
}

async function maintenanceStart(host) {
  open(`<h3>Maintenance of host ${esc(host)}</h3><div id="plan">reading the plan…</div><div id="outcome"></div>
    ${buttons(`<button id="go" class="primary" disabled>Start maintenance</button>`)}`);
  try {
    const p = await get(`/hosts/${encodeURIComponent(host)}/maintenance/plan`);
    $("#plan").innerHTML = (p.entries.length ? `<table><thead><tr><th>VM</th><th>Action</th><th>To</th><th>Why</th></tr></thead><tbody>`
      + p.entries.map((e) => `<tr><td>${esc(e.vm)}</td><td><span class="state ${esc(e.action)}">${esc(e.action)}</span></td>
        <td>${esc(e.to || "-")}</td><td class="wrap">${esc(e.why)}${e.findings.map((f) => finding(f)).join("")}</td></tr>`).join("")
      + `</tbody></table>` : "<p>No VMs on this host.</p>")
      + p.warnings.map((w) => `<div class="finding warning">${esc(w)}</div>`).join("")
      + (p.blocked.length ? `<div class="finding error">Blocked by ${esc(p.blocked.join(", "))}: fix their findings first.</div>` : "");
    $("#go").disabled = p.blocked.length > 0;
  } catch (e) { $("#plan").innerHTML = shownError(e); }
  $("#go").onclick = () => run(() => post(`/hosts/${encodeURIComponent(host)}/maintenance/start`));
}

function maintenanceStop(host) {
  open(`<h3>End maintenance of host ${esc(host)}</h3>
    <p><label><input type="checkbox" id="back" checked> move back the VMs the drain moved away</label></p>
    <p><label><input type="checkbox" id="restart"> restore the VMs the drain saved</label></p><div id="outcome"></div>
    ${buttons(`<button id="go" class="primary">End maintenance</button>`)}`);
  $("#go").onclick = () => run(() => post(`/hosts/${encodeURIComponent(host)}/maintenance/stop`,
    {move_back: $("#back").checked, restart_saved: $("#restart").checked}));
}

function fenceConfirm(host) {
  const h = tables.host.row(host) || {};
  open(`<h3>Host ${esc(host)} is ${esc(h.state)}</h3><p class="wrap">${esc(h.state_reason)}</p>
    <p>Its HA VMs restart elsewhere only once the host cannot run them any more. Say which holds:</p>
    <p><label><input type="radio" name="how" value="fence" checked> fence it with its agent now (past the fence cap)</label><br>
    <label><input type="radio" name="how" value="off"> I checked: it is off (power or network cut by hand)</label></p>
    <p class="err">A host that still runs its VMs and is failed over runs them twice, on two hosts.</p><div id="outcome"></div>
    ${buttons(`<button id="go" class="primary">Fail its HA VMs over</button>`)}`);
  $("#go").onclick = () => run(() => post(`/hosts/${encodeURIComponent(host)}/fence/confirm`,
    {off: body().querySelector("input[name=how]:checked").value === "off"}));
}

function reserve(cluster) {
  const c = tables.cluster.row(cluster) || {};
  open(`<h3>Reserve of cluster ${esc(cluster)}</h3>
    <p><label>Failed nodes the cluster must absorb <input id="k" type="number" min="0" value="${Number(c.reserve ?? 1)}" size="4"></label></p>
    <div id="outcome"></div>${buttons(`<button id="go" class="primary">Set</button>`)}`);
  $("#go").onclick = () => run(() => post(`/clusters/${encodeURIComponent(cluster)}/settings`, {reserve: Number($("#k").value)}));
}

function ha(vm) {
  const v = tables.vm.row(vm) || {};
  open(`<h3>High availability of VM ${esc(vm)}</h3>
    <p><label><input type="checkbox" id="on" ${v.ha ? "checked" : ""}> restart it elsewhere when its host fails</label></p>
    <p><label>Priority <select id="prio"><option value="3">high</option><option value="2">medium</option><option value="1">low</option><option value="0">no automatic restart</option></select></label></p>
    <div id="outcome"></div>${buttons(`<button id="go" class="primary">Apply</button>`)}`);
  $("#prio").value = String(v.ha_priority ?? 2);
  $("#go").onclick = () => run(() => post(`/vms/${encodeURIComponent(vm)}/ha`, {enabled: $("#on").checked, priority: Number($("#prio").value)}));
}

function confirmThen(title, warning, label, act) {
  open(`<h3>${esc(title)}</h3><p>${esc(warning)}</p><div id="outcome"></div>${buttons(`<button id="go" class="primary">${esc(label)}</button>`)}`);
  $("#go").onclick = () => run(act);
}

const vmPath = (vm, what) => `/vms/${encodeURIComponent(vm)}${what}`;
export const ACTIONS = {
  migrate, ha,
  start: (vm) => simple(() => post(vmPath(vm, "/start"))),
  stop: (vm) => confirmThen(`Stop VM ${vm}`, "The guest is asked to shut down; after 60 s it is turned off.", "Stop",
    () => post(vmPath(vm, "/stop"), {})),
  save: (vm) => simple(() => post(vmPath(vm, "/save"))),
  restore: (vm) => simple(() => post(vmPath(vm, "/restore"))),
  delete: (vm) => confirmThen(`Delete VM ${vm}`, "Its definition and its disks are removed for good.", "Delete",
    () => send("DELETE", vmPath(vm, ""))),
  "maintenance-start": maintenanceStart,
  "maintenance-stop": maintenanceStop,
  "fence-confirm": fenceConfirm,
  reserve,
  cancel: (id) => simple(() => post(`/jobs/${id}/cancel`)),
};

// An action without a question: its refusal still shows, in the dialog.
async function simple(act) {
  try {
    const job = await act();
    if (job?.id) tables.job.put(job);
  } catch (e) { open(`<h3>Refused</h3>${shownError(e)}${buttons()}`); }
}

document.getElementById("dialog").addEventListener("click", (ev) => {
  if (ev.target.dataset?.close !== undefined) close();
});

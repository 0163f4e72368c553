// The console's frame: sign-in, the page shown (#/, #/vm/NAME, #/job/ID), the live
// stream, and the buttons of every table.
"use strict";

import {ACTIONS, close} from "./actions.js";
import {API, get, stream, token, whenUnauthorized} from "./api.js";
import {apply, loadAll, loadHosts, loadVms, tables} from "./fleet.js";
import {jobPage, leave, vmPage} from "./pages.js";

const $ = (id) => document.getElementById(id);
let live = null;  // the stream's AbortController while it runs

function showLogin(msg) {
  $("fleet").hidden = true; $("page").hidden = true; $("login").hidden = false;
  $("login-error").textContent = msg || "";
  live?.abort(); live = null;
}
whenUnauthorized(showLogin);

// The stream runs while signed in; when it breaks it comes back after 2 s and the
// lists are read again (what changed meanwhile was not sent to anyone).
async function follow() {
  if (live) return;
  live = new AbortController();
  const mine = live;
  let first = true;
  while (live === mine) {
    try {
      await stream((type, data) => {
        if (type === "hello") {
          $("live").className = "live"; $("live").title = "live updates";
          if (!first) route();
          first = false;
        } else if (type === "reset") route();
        else if (type === "denied") showLogin(`${data.code}: ${data.cause}`);
        else { apply(type, data); pageEvent(type, data); }
        $("status").textContent = "updated " + new Date().toLocaleTimeString();
      }, mine.signal);
    } catch (e) {
      if (mine.signal.aborted) return;
    }
    $("live").className = "offline"; $("live").title = "live updates interrupted: reconnecting";
    first = false;
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// A page open on a VM or a job reads it again when the stream says it changed.
function pageEvent(type, data) {
  const [kind, key] = current();
  if (kind === "vm" && ((type === "vm" && data.name === key)
      || (type === "job" && data.subject === key && data.state === "Completed"))) vmPage(key);
  if (kind === "job" && type === "job" && String(data.id) === key) jobPage(key);
}

const current = () => {
  const m = location.hash.match(/^#\/(vm|job)\/(.+)$/);
  return m ? [m[1], decodeURIComponent(m[2])] : ["fleet", ""];
};

async function route() {
  if (!token()) return showLogin();
  const [kind, key] = current();
  $("login").hidden = true;
  $("fleet").hidden = kind !== "fleet"; $("page").hidden = kind === "fleet";
  try {
    if (kind === "vm") await vmPage(key);
    else if (kind === "job") await jobPage(key);
    else { leave(); await loadAll(); }
  } catch (e) {
    console.error(e);
    $("status").textContent = "manager: " + e.message;
  }
  follow();
}
window.addEventListener("hashchange", () => { close(); route(); });

// The tables' buttons: the row says what they act on.
document.body.addEventListener("click", (ev) => {
  const act = ev.target.dataset?.act;
  if (!act) return;
  const key = ev.target.closest("tr")?.dataset.name;
  ACTIONS[act]?.(key);
});
for (const [id, reload] of [["host-match", loadHosts], ["host-state", loadHosts], ["vm-match", loadVms],
  ["vm-cluster", loadVms], ["vm-state", loadVms]]) {
  let timer = null;
  $(id).addEventListener(id.endsWith("match") ? "input" : "change", () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const t = id.startsWith("host") ? tables.host : tables.vm;
      t.cursors = [""];
      reload();
    }, 250);
  });
}

// 'whimbrel console' prints a link with the token in the fragment, which browsers
// never send to the server; keep it for this tab and take it out of the address bar.
if (location.hash.startsWith("#token=")) {
  sessionStorage.setItem("whimbrel-token", decodeURIComponent(location.hash.slice(7)));
  history.replaceState(null, "", location.pathname);
}
$("save").onclick = () => {
  sessionStorage.setItem("whimbrel-token", $("token").value.trim());
  whoami();
};
// A password buys a 12-hour token for this tab; the password itself is never kept.
$("signin").onsubmit = async (ev) => {
  ev.preventDefault();
  const body = {user: $("user").value.trim(), password: $("password").value};
  $("password").value = "";
  const r = await fetch(API + "/login", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify(body)});
  const answer = await r.json();
  if (!r.ok) return showLogin(`${answer.error.code}: ${answer.error.cause}`);
  sessionStorage.setItem("whimbrel-token", answer.token);
  sessionStorage.setItem("whimbrel-signed-in", answer.id);  // this tab's own: revoked on sign-out
  whoami();
};
$("signout").onclick = async () => {
  const mine = sessionStorage.getItem("whimbrel-signed-in");  // not a token given by hand
  if (mine) await fetch(`${API}/tokens/${encodeURIComponent(mine)}`, {method: "DELETE",
    headers: {Authorization: "Bearer " + token()}});
  sessionStorage.clear();
  $("who").textContent = "";
  $("signout").hidden = true;
  showLogin("signed out");
};

async function whoami() {
  try {
    const me = await get("/whoami");
    const roles = me.grants.map((g) => `${g.role} on ${g.cluster || "the fleet"}`).join(", ");
    $("who").textContent = `${me.user} (${roles || "no role"})`;
    $("signout").hidden = false;
  } catch (e) { return; }
  route();
}
if (token()) whoami(); else showLogin();

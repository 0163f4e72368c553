// The REST API and its event stream, with the tab's token. Every rule (who may do
// what, what a move needs) is the manager's: the console only shows its answers.
"use strict";

export const API = "/api/v1";
export const esc = (v) => String(v ?? "").replace(/[&<>"']/g,
  (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));

export const token = () => sessionStorage.getItem("whimbrel-token") || "";
const headers = () => ({Authorization: "Bearer " + token(), "Content-Type": "application/json"});

// A refused or failed request, with the manager's code, cause and fix.
export class ApiError extends Error {
  constructor(status, error) {
    super(`${error.code}: ${error.cause}`);
    this.status = status; this.error = error;
  }
}

let onUnauthorized = () => {};
export function whenUnauthorized(fn) { onUnauthorized = fn; }

async function answer(r) {
  const body = r.status === 204 ? null : await r.json().catch(() => ({}));
  if (r.status === 401) onUnauthorized(body?.error?.cause || "the token was refused");
  if (!r.ok) throw new ApiError(r.status, body?.error || {code: String(r.status), cause: r.statusText, fix: ""});
  return {body, next: r.headers.get("X-Next-Cursor")};
}

export async function get(path) { return (await answer(await fetch(API + path, {headers: headers()}))).body; }
export async function page(path) { return answer(await fetch(API + path, {headers: headers()})); }
export async function send(method, path, body) {
  const init = {method, headers: headers()};
  if (body !== undefined) init.body = JSON.stringify(body);
  return (await answer(await fetch(API + path, init))).body;
}
export const post = (path, body) => send("POST", path, body ?? {});

// The fleet's changes as server-sent events, read with fetch (EventSource cannot
// send the token). ``handle(type, data)`` gets each; the promise ends with the stream.
export async function stream(handle, signal) {
  const r = await fetch(API + "/events", {headers: headers(), signal});
  if (!r.ok) { await answer(r); return; }
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) return;
    buf += value;
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut); buf = buf.slice(cut + 2);
      let type = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) type = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) handle(type, JSON.parse(data));
    }
  }
}

// One finding or error as the CLI prints it: code, severity, cause, and the fix.
export function finding(f) {
  return `<div class="finding ${esc(f.severity || "error")}"><code>${esc(f.code)}</code>`
    + (f.severity ? ` [${esc(f.severity)}]` : "") + (f.subject ? ` ${esc(f.subject)}:` : "")
    + ` ${esc(f.cause)}<div class="fix">Fix: ${esc(f.fix)}</div></div>`;
}

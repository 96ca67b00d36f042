"use strict";
// The dashboard's pages, chosen by the path: "/" the release list, "/releases/NS/NAME" a
// release, "/topology/NS" a namespace's graph. Everything is read from the JSON API and polled;
// every text is set with textContent, never parsed as HTML.
const POLL_MS = 2000;
const state = { csrf: "", timers: [] };

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.dataset[key.slice(5).replace(/-(\w)/g, (_, c) => c.toUpperCase())] = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

async function getJson(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (response.status === 401) window.location.assign("/login");
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status}`);
  return body;
}

async function postJson(path, body) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": state.csrf },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  return { status: response.status, ok: response.ok, body: answer };
}

function poll(fn, every = POLL_MS) {
  const run = async () => {
    try { await fn(); } catch (error) { showError(error); }
  };
  run();
  state.timers.push(setInterval(run, every));
}

function showError(error) {
  const line = document.getElementById("load-error");
  if (line) line.textContent = String(error.message || error);
}

function weightBar(stable, canary) {
  // Widths through the CSSOM: the Content-Security-Policy refuses inline style attributes.
  const parts = [["stable", stable], ["canary", canary]].map(([role, weight]) => {
    const part = el("span", { class: role });
    part.style.width = `${weight ?? 0}%`;
    return part;
  });
  return el("span", { class: "bar", title: `stable ${stable ?? "-"}%, canary ${canary ?? "-"}%` }, ...parts);
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) if (seconds >= size) return `${Math.floor(seconds / size)}${unit}`;
  return `${seconds}s`;
}

function healthCell(health) {
  const rate = health.successRate === null || health.successRate === undefined ? "" : ` ${health.successRate.toFixed(2)}%`;
  return el("td", { class: `health-${health.state}` }, `${health.state}${rate}`);
}

function weightsText(row) {
  return `${row.stable.version} ${row.stable.weight ?? "-"}% / ${row.canary.version} ${row.canary.weight ?? "-"}%`;
}

function listPage(view) {
  const body = el("tbody", { id: "releases" });
  view.replaceChildren(el("h2", {}, "Releases"), el("p", { id: "load-error", class: "error" }),
    el("table", {}, el("thead", {}, el("tr", {}, ...["Namespace", "Service", "Release", "Strategy", "Phase", "Weights", "", "Age", "Health"].map((h) => el("th", {}, h)))), body));
  poll(async () => {
    const { releases } = await getJson("/api/releases");
    body.replaceChildren(...releases.map((row) => el("tr", { "data-release": `${row.namespace}/${row.name}`, "data-phase": row.phase },
      el("td", {}, el("a", { href: `/topology/${encodeURIComponent(row.namespace)}` }, row.namespace)),
      el("td", {}, row.service),
      el("td", {}, el("a", { href: `/releases/${encodeURIComponent(row.namespace)}/${encodeURIComponent(row.name)}` }, row.name)),
      el("td", {}, row.strategy), el("td", { class: "phase" }, row.phase),
      el("td", { class: "weights" }, weightsText(row)), el("td", {}, weightBar(row.stable.weight, row.canary.weight)),
      el("td", {}, age(row.ageSeconds)), healthCell(row.health))));
    if (!releases.length) body.replaceChildren(el("tr", {}, el("td", { colspan: "9", class: "muted" }, "No release you may list.")));
  });
}

window.addEventListener("DOMContentLoaded", async () => {
  const session = await getJson("/api/session");
  state.csrf = session.csrf;
  document.getElementById("who").textContent = session.user;
  document.getElementById("sign-out").addEventListener("click", async () => {
    await postJson("/api/logout", {});
    window.location.assign("/login");
  });
  const view = document.getElementById("view");
  const parts = window.location.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "releases" && parts.length === 3) window.releasePage(view, parts[1], parts[2]);
  else if (parts[0] === "topology" && parts.length === 2) window.topologyPage(view, parts[1]);
  else listPage(view);
});

window.dashboard = { el, getJson, postJson, poll, weightBar, healthCell, weightsText, age };

"use strict";
// A release page: phase, weights and actions; the charts; the timeline and the analysis'
// verdicts. Each action posts the kubectl plugin's patch of one spec field, made as the user.
function actionPanel(release, say) {
  const { el, postJson } = window.dashboard;
  const path = `/api/releases/${encodeURIComponent(release.namespace)}/${encodeURIComponent(release.name)}`;
  const act = async (verb, body = {}) => {
    const answer = await postJson(`${path}/${verb}`, body);
    say(answer.ok ? `applied: ${answer.body.applied}` : `refused (${answer.status}): ${answer.body.error || ""}`, answer.ok);
  };
  const slider = el("input", { type: "range", min: "0", max: "100", step: "1", id: "weight", value: String(release.weight ?? 0) });
  const shown = el("output", { id: "weight-value" }, `${slider.value}%`);
  slider.addEventListener("input", () => { shown.textContent = `${slider.value}%`; });
  const button = (id, text, verb, body, cls = "") => el("button", { type: "button", id, class: cls, onclick: () => act(verb, body) }, text);
  return el("div", { class: "panel actions" },
    el("label", { for: "weight" }, "Canary weight"), slider, shown,
    el("button", { type: "button", id: "set-weight", onclick: () => act("set-weight", { weight: Number(slider.value) }) }, "Set weight"),
    button("take-over-stable", `Take over ${release.stable.version}`, "take-over", { version: release.stable.version }),
    button("take-over-canary", `Take over ${release.canary.version}`, "take-over", { version: release.canary.version }),
    button("offline", "Offline", "offline", {}),
    release.policy === "Paused" ? button("resume", "Resume", "resume", {}) : button("pause", "Pause", "pause", {}),
    button("abort", "Abort", "abort", {}, "danger"));
}

// "2026-01-01 11:59:30" (UTC): Kubernetes writes times with and without fractions of a second.
function shownTime(text) {
  const when = new Date(text);
  return Number.isNaN(when.getTime()) ? String(text) : when.toISOString().slice(0, 19).replace("T", " ");
}

function cellText(item, column) {
  const value = item[column];
  if (value === null || value === undefined) return "-";
  if (column === "time") return shownTime(value);
  if (column === "reason" && item.count > 1) return `${value} ×${item.count}`;
  return String(value);
}

function rowsOf(items, columns) {
  const { el } = window.dashboard;
  return items.map((item) => el("tr", {}, ...columns.map((c) => el("td", {}, cellText(item, c)))));
}

function summary(release) {
  const { el, weightBar, healthCell, weightsText } = window.dashboard;
  return el("table", { id: "summary" }, el("tbody", {},
    el("tr", {}, el("th", {}, "Phase"), el("td", { id: "phase" }, release.phase), el("th", {}, "Strategy"), el("td", {}, release.strategy)),
    el("tr", {}, el("th", {}, "Weights"), el("td", { id: "weights" }, weightsText(release), " ", weightBar(release.stable.weight, release.canary.weight)),
      el("th", {}, "Health"), healthCell(release.health)),
    el("tr", {}, el("th", {}, "Policy"), el("td", {}, release.policy), el("th", {}, "Take over"), el("td", {}, release.takeOver || "-")),
    el("tr", {}, el("th", {}, "Message"), el("td", { colspan: "3" }, release.message || "-"))));
}

window.releasePage = (view, namespace, name) => {
  const { el, getJson, poll } = window.dashboard;
  const base = `/api/releases/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`;
  document.getElementById("crumbs").replaceChildren(el("a", { href: "/" }, "Releases"),
    el("a", { href: `/topology/${encodeURIComponent(namespace)}` }, `topology of ${namespace}`), el("span", {}, `${namespace}/${name}`));
  const head = el("div", { id: "head" });
  const result = el("p", { id: "action-result", role: "status" });
  const actions = el("div", { id: "actions" });
  const charts = el("div", { class: "grid", id: "charts" });
  const timeline = el("tbody", { id: "timeline" });
  const verdicts = el("tbody", { id: "verdicts" });
  view.replaceChildren(el("h2", {}, `${namespace}/${name}`), el("p", { id: "load-error", class: "error" }), head, actions, result, charts,
    el("h3", {}, "Timeline"), el("table", {}, el("thead", {}, el("tr", {}, ...["Time", "Source", "Reason", "Message"].map((h) => el("th", {}, h)))), timeline),
    el("h3", {}, "Analysis verdicts"), el("table", {}, el("thead", {}, el("tr", {}, ...["Time", "Step", "Weight", "Verdict", "Reason", "Canary requests", "Canary errors", "Stable requests", "Stable errors"].map((h) => el("th", {}, h)))), verdicts));
  const say = (text, ok) => { result.textContent = text; result.className = ok ? "ok" : "error"; };
  const drawn = new window.ReleaseCharts(charts);
  let versions = [];
  let actionsFor = "";
  poll(async () => {
    const release = await getJson(base);
    versions = [release.stable.version, release.canary.version];
    head.replaceChildren(summary(release));
    const key = `${release.policy}/${release.stable.version}/${release.canary.version}`;
    if (key !== actionsFor) { actionsFor = key; actions.replaceChildren(actionPanel(release, say)); }
    timeline.replaceChildren(...rowsOf(release.timeline, ["time", "source", "reason", "message"]));
    verdicts.replaceChildren(...rowsOf(release.verdicts, ["time", "step", "weight", "verdict", "reason", "canaryRequests", "canaryErrors", "stableRequests", "stableErrors"]));
  });
  poll(async () => {
    const answer = await getJson(`${base}/metrics`);
    drawn.update(answer.charts, versions);
  }, 5000);
};

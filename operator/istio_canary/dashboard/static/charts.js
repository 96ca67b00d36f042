"use strict";
// The release page's four charts (Chart.js): one line per version, time on a linear axis so no
// date adapter is needed. Each chart's legend lists the points per version (what the tests read).
const CHART_TITLES = {
  requestRate: "Request rate (req/s)",
  successRate: "Success rate (%)",
  latencyP50Ms: "Latency p50 (ms)",
  latencyP99Ms: "Latency p99 (ms)",
};
const PALETTE = ["#6e7781", "#0969da", "#8250df", "#bf3989", "#1a7f37"];

// Stable first, canary second, as the release names them; before the release is read, by
// the chart's own (sorted) order, which is the same for the usual v1/v2.
function colourOf(version, versions, names) {
  const index = versions.indexOf(version);
  return PALETTE[(index < 0 ? names.indexOf(version) : index) % PALETTE.length];
}

function clockLabel(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function newChart(canvas, title) {
  return new window.Chart(canvas, {
    type: "line",
    data: { datasets: [] },
    options: {
      animation: false,
      maintainAspectRatio: false,
      parsing: false,
      plugins: { title: { display: true, text: title } },
      scales: { x: { type: "linear", ticks: { callback: clockLabel, maxTicksLimit: 6 } }, y: { beginAtZero: true } },
    },
  });
}

function updateChart(chart, byVersion, versions, legend) {
  const names = Object.keys(byVersion).sort();
  chart.data.datasets = names.map((version) => ({
    label: version,
    data: byVersion[version].map(([x, y]) => ({ x, y })),
    borderColor: colourOf(version, versions, names),
    backgroundColor: colourOf(version, versions, names),
    pointRadius: 0,
    borderWidth: 2,
  }));
  chart.update();
  legend.replaceChildren(...names.map((version) => {
    const item = document.createElement("li");
    item.dataset.version = version;
    item.dataset.points = String(byVersion[version].length);
    item.textContent = `${version}: ${byVersion[version].length} points`;
    return item;
  }));
}

window.ReleaseCharts = class {
  constructor(container) {
    this.charts = {};
    for (const [key, title] of Object.entries(CHART_TITLES)) {
      const panel = document.createElement("div");
      panel.className = "panel";
      panel.id = `chart-${key}`;
      const box = document.createElement("div");
      box.className = "chart";
      const canvas = document.createElement("canvas");
      box.append(canvas);
      const legend = document.createElement("ul");
      legend.className = "legend";
      panel.append(box, legend);
      container.append(panel);
      this.charts[key] = { chart: newChart(canvas, title), legend };
    }
  }

  update(charts, versions) {
    for (const [key, { chart, legend }] of Object.entries(this.charts)) {
      updateChart(chart, charts[key] || {}, versions, legend);
    }
  }
};

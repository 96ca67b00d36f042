"use strict";
// The namespace topology (Cytoscape.js): services as compound nodes holding their versions,
// edges labelled with request rate and success rate, the released service outlined with its
// live split. A table under the graph says the same in text.
const GRAPH_STYLE = [
  { selector: "node", style: { label: "data(label)", "font-size": 11, "text-valign": "center", "background-color": "#d0d7de" } },
  { selector: "node[kind = 'service']", style: { "text-valign": "top", "background-color": "#f6f8fa", "border-width": 1, "border-color": "#8c959f" } },
  { selector: "node[?released]", style: { "border-width": 3, "border-color": "#0969da" } },
  { selector: "node[kind = 'version'][weight >= 0]", style: { "background-color": "#9ecbff" } },
  { selector: "edge", style: { width: 2, label: "data(text)", "font-size": 10, "curve-style": "bezier", "target-arrow-shape": "triangle", "line-color": "#8c959f", "target-arrow-color": "#8c959f" } },
  { selector: "edge[successRate < 99]", style: { "line-color": "#c62828", "target-arrow-color": "#c62828" } },
];

function edgeText(edge) {
  const success = edge.successRate === null ? "-" : `${edge.successRate}%`;
  return `${edge.requestRate.toFixed(2)} rps, ${success}`;
}

function nodeLabel(node) {
  if (node.kind === "version" && node.weight !== undefined) return `${node.label} (${node.weight}%)`;
  if (node.released) return `${node.label} — release ${node.release}`;
  return node.label;
}

window.TopologyGraph = class {
  constructor(container, table) {
    this.table = table;
    this.signature = "";
    this.cy = window.cytoscape({ container, style: GRAPH_STYLE, wheelSensitivity: 0.2 });
  }

  update(graph) {
    const nodes = graph.nodes.map((n) => ({ data: { ...n, label: nodeLabel(n) } }));
    const edges = graph.edges.map((e) => ({ data: { ...e, text: edgeText(e) } }));
    const signature = JSON.stringify([graph.nodes.map((n) => n.id), graph.edges.map((e) => e.id)]);
    if (signature !== this.signature) {
      this.signature = signature;
      this.cy.elements().remove();
      this.cy.add([...nodes, ...edges]);
      // Laid out by the versions (the leaves); each service box wraps its versions.
      this.cy.nodes(":childless").union(this.cy.edges())
        .layout({ name: "breadthfirst", directed: true, padding: 40, spacingFactor: 1.4 }).run();
    } else {
      for (const element of [...nodes, ...edges]) this.cy.getElementById(element.data.id).data(element.data);
    }
    this.renderTable(graph);
  }

  renderTable(graph) {
    const rows = graph.edges.map((edge) => {
      const row = document.createElement("tr");
      row.dataset.source = edge.source;
      row.dataset.target = edge.target;
      for (const text of [edge.source, edge.target, edge.requestRate.toFixed(2), edge.successRate === null ? "-" : `${edge.successRate}%`]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      return row;
    });
    this.table.replaceChildren(...rows);
  }
};

window.topologyPage = (view, namespace) => {
  const { el, getJson, poll } = window.dashboard;
  document.getElementById("crumbs").replaceChildren(el("a", { href: "/" }, "Releases"), el("span", {}, `topology of ${namespace}`));
  const container = el("div", { id: "graph" });
  const table = el("tbody", { id: "edges" });
  const note = el("p", { id: "load-error", class: "error" });
  view.replaceChildren(el("h2", {}, `Topology of ${namespace}`), note, container,
    el("h3", {}, "Traffic"),
    el("table", {}, el("thead", {}, el("tr", {}, ...["From", "To", "Requests/s", "Success"].map((h) => el("th", {}, h)))), table));
  const graph = new window.TopologyGraph(container, table);
  window.icoTopology = graph; // what the browser tests read the node labels from
  poll(async () => {
    const answer = await getJson(`/api/topology/${encodeURIComponent(namespace)}`);
    note.textContent = answer.prometheus === "ok" ? "" : `Prometheus: ${answer.prometheus}`;
    graph.update(answer);
  }, 5000);
};

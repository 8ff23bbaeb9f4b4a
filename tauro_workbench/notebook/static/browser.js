// Registry browser for tauro_workbench (anywidget ESM; shipped in the package, no CDN).
// It only draws `state` (JSON from the kernel's Catalog) and sends requests by setting
// `request`; the kernel runs every action and answers with a new `state`.

function node(tag, attrs = {}, children = []) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") el.textContent = value;
    else if (key === "className") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value);
  }
  for (const child of children) if (child) el.appendChild(child);
  return el;
}

function show(value) {
  if (value === null || value === undefined || value === "") return "\u2013";
  if (typeof value === "number") return Number.isInteger(value) ? value.toLocaleString("en-US") : value.toFixed(4);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function badge(text) {
  return node("span", { className: `tw-badge tw-${text || "none"}`, text: text || "\u2013" });
}

function table(headers, rows) {
  const head = node("tr", {}, headers.map((h) => node("th", { text: h })));
  const body = rows.map((row) =>
    node("tr", {}, row.map((cell) => (cell instanceof Node ? node("td", {}, [cell]) : node("td", { text: show(cell) }))))
  );
  return node("table", { className: "tw-table" }, [node("thead", {}, [head]), node("tbody", {}, body)]);
}

function render({ model, el }) {
  let seq = 0;
  const send = (request) => {
    seq += 1;
    model.set("request", { ...request, seq: `${Date.now()}-${seq}` });
    model.save_changes();
  };
  const root = node("div", { className: "tauro-browser" });
  const search = node("input", {
    className: "tw-search",
    type: "search",
    placeholder: "Search groups, features, tags\u2026",
    "aria-label": "search feature groups",
  });
  let timer = null;
  search.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => send({ action: "search", query: search.value }), 200);
  });
  const count = node("div", { className: "tw-count" });
  const list = node("ul", { className: "tw-groups", role: "listbox" });
  const side = node("div", { className: "tw-side" }, [search, count, list]);
  const detail = node("div", { className: "tw-detail" });
  root.appendChild(side);
  root.appendChild(detail);
  el.appendChild(root);

  function drawList(state) {
    count.textContent = `${state.groups.length} of ${state.total} groups`;
    list.replaceChildren(
      ...state.groups.map((g) =>
        node(
          "li",
          {
            className: `tw-group${g.name === state.selected ? " tw-selected" : ""}`,
            "data-group": g.name,
            role: "option",
            tabindex: "0",
            onclick: () => send({ action: "select", group: g.name }),
            onkeydown: (e) => {
              if (e.key === "Enter") send({ action: "select", group: g.name });
            },
          },
          [
            node("div", { className: "tw-group-name", text: g.name }),
            node("div", { className: "tw-group-meta" }, [
              node("span", { text: `v${g.version} \u00b7 ${g.kind} \u00b7 ${g.features} features` }),
              g.drift ? badge(g.drift) : null,
            ]),
          ]
        )
      )
    );
  }

  function drawResult(result) {
    if (!result) return null;
    const box = node("div", { className: `tw-result ${result.ok ? "tw-ok" : "tw-error"}` }, [
      node("div", { className: "tw-message", text: result.message || "" }),
    ]);
    if (result.ok && result.action === "preview") {
      if (result.sql) box.appendChild(node("pre", { className: "tw-sql", text: result.sql }));
      box.appendChild(table(result.columns, result.rows));
    }
    return box;
  }

  function drawDetail(state) {
    const d = state.detail;
    if (!d) {
      detail.replaceChildren(
        node("div", { className: "tw-empty", text: "Pick a feature group to see its schema, lineage, writes and drift." }),
        drawResult(state.result) || node("span")
      );
      return;
    }
    const facts = [
      ["version", d.version],
      ["kind", d.kind],
      ["entity keys", d.entity_keys.join(", ")],
      ["event time", d.timestamp_key || "none"],
      ["ttl", d.ttl || "none"],
      ["rows", d.rows],
      ["online", d.online],
      ["tags", Object.entries(d.tags).map(([k, v]) => `${k}=${v}`).join(", ")],
    ];
    const lineage = node("div", { className: "tw-lineage" });
    lineage.innerHTML = d.lineage_svg || ""; // SVG built and escaped by the kernel's LineageGraph
    const drift = d.drift
      ? node("div", {}, [
          node("div", { className: "tw-drift-line" }, [
            badge(d.drift.verdict),
            node("span", { text: ` write #${d.drift.write_id} vs ${d.drift.reference || "\u2013"}` }),
          ]),
          d.drift.features.length
            ? table(
                ["feature", "PSI", "KS", "verdict"],
                d.drift.features.map((f) => [f.feature, f.psi, f.ks, badge(f.verdict)])
              )
            : null,
        ])
      : node("div", { className: "tw-muted", text: "No drift report yet." });
    const actions = node("div", { className: "tw-actions" }, [
      node("button", { className: "tw-button", "data-action": "preview", text: "Preview", onclick: () => send({ action: "preview", limit: 10 }) }),
      node("button", { className: "tw-button", "data-action": "promote-materialized", text: "Promote \u2192 materialized", onclick: () => send({ action: "promote", to: "materialized" }) }),
      node("button", { className: "tw-button", "data-action": "promote-online", text: "Promote \u2192 online", onclick: () => send({ action: "promote", to: "online" }) }),
    ]);
    detail.replaceChildren(
      node("h3", { className: "tw-title", text: d.name }),
      d.description ? node("div", { className: "tw-muted", text: d.description }) : node("span"),
      actions,
      drawResult(state.result) || node("span"),
      node("h4", { text: "Schema" }),
      table(["fact", "value"], facts),
      table(["feature", "type", "kind", "nullable", "description"], d.features.map((f) => [f.name, f.type, f.kind, f.nullable ? "yes" : "no", f.description])),
      node("h4", { text: "Lineage" }),
      lineage,
      node("h4", { text: "Last writes" }),
      d.writes.length
        ? table(["id", "mode", "rows", "table version", "written at", "drift"], d.writes.map((w) => [w.id, w.mode, w.rows, w.table_version, w.written_at, w.drift ? badge(w.drift) : "\u2013"]))
        : node("div", { className: "tw-muted", text: "No writes yet (virtual, or never materialized)." }),
      node("h4", { text: "Drift" }),
      drift
    );
  }

  function draw() {
    const state = model.get("state") || { groups: [], total: 0 };
    if (document.activeElement !== search && search.value !== (state.query || "")) search.value = state.query || "";
    drawList({ groups: [], total: 0, ...state });
    drawDetail(state);
    root.setAttribute("data-revision", String(state.revision ?? 0));
  }
  model.on("change:state", draw);
  draw();
  return () => model.off("change:state", draw);
}

export default { render };

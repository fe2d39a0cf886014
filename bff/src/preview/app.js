// Thesa preview: renders definitions as a frontend would, from the BFF's
// own /ui/* API, with a development token for the role chosen above.
"use strict";

const state = { token: null, role: null, site: { roles: [], pages: [], workflows: [] } };
const $ = (sel, root) => (root || document).querySelector(sel);
const el = (tag, attrs, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, "");
    else if (v !== false && v != null) node.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c != null) node.append(c instanceof Node ? c : String(c));
  return node;
};

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + state.token };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (path.startsWith("/ui/commands/")) headers["X-Idempotency-Key"] = "preview-" + Date.now() + "-" + Math.random().toString(36).slice(2);
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (_) { json = { raw: text }; }
  return { status: res.status, ok: res.ok, body: json };
}
const errorText = (r) => (r.body && r.body.error && (r.body.error.message || r.body.error.code)) || ("HTTP " + r.status);

function toast(message, isError) {
  const node = el("div", { class: isError ? "error" : "" }, message);
  $("#toast").append(node);
  setTimeout(() => node.remove(), 4000);
}

function get(obj, path) {
  return String(path).split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

// "row.id" / "route.id" / "'literal'" against the row and the route params.
function resolveParam(expr, row, route) {
  if (typeof expr !== "string") return expr;
  if (expr.startsWith("row.")) return get(row, expr.slice(4));
  if (expr.startsWith("route.")) return route[expr.slice(6)];
  if (expr.startsWith("'") && expr.endsWith("'")) return expr.slice(1, -1);
  return expr;
}
function mapParams(params, row, route) {
  const out = {};
  for (const [k, v] of Object.entries(params || {})) out[k] = resolveParam(v, row, route);
  return out;
}

// A definition route (/orders/{id}) with values → the preview hash.
function routeHash(route, values) {
  const parts = route.split("?")[0].split("/").filter(Boolean);
  for (const page of state.site.pages) {
    const tpl = page.route.split("/").filter(Boolean);
    if (tpl.length !== parts.length) continue;
    const params = {};
    let ok = true;
    tpl.forEach((seg, i) => {
      const m = seg.match(/^\{(.+)\}$/) || seg.match(/^:(.+)$/);
      let value = parts[i].replace(/\{(.+?)\}/g, (_, k) => (values && values[k] != null ? values[k] : ""));
      if (m) params[m[1]] = value; else if (seg !== value) ok = false;
    });
    if (ok) return "#/p/" + page.id + query(params);
  }
  return "#/";
}
const query = (params) => {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== "" && v != null) q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
};

function conditionHolds(c, row) {
  const v = get(row, c.field);
  switch (c.operator) {
    case "in": return (c.value || []).includes(v);
    case "not_in": return !(c.value || []).includes(v);
    case "neq": case "ne": return v !== c.value;
    default: return v === c.value;
  }
}
function actionState(action, row) {
  let show = true, enable = true;
  for (const c of action.conditions || []) {
    // A field the record does not carry (a form's load source has only the
    // form's fields) cannot be judged: the condition is not applied.
    if (get(row || {}, c.field) === undefined) continue;
    const holds = conditionHolds(c, row || {});
    if ((c.effect || "show") === "show" && !holds) show = false;
    if (c.effect === "enable" && !holds) enable = false;
    if (c.effect === "hide" && holds) show = false;
    if (c.effect === "disable" && holds) enable = false;
  }
  return { show, enable };
}

function confirmDialog(conf) {
  return new Promise((resolve) => {
    const dialog = $("#confirm");
    $("#confirm-title").textContent = conf.title || "Are you sure?";
    $("#confirm-message").textContent = conf.message || "";
    $("#confirm-ok").textContent = conf.confirm || "OK";
    $("#confirm-cancel").textContent = conf.cancel || "Cancel";
    $("#confirm-ok").className = conf.style === "danger" ? "danger" : "primary";
    dialog.onclose = () => resolve(dialog.returnValue === "ok");
    dialog.showModal();
  });
}

async function runCommand(commandId, input, routeParams, confirmation) {
  if (confirmation && !(await confirmDialog(confirmation))) return null;
  const r = await api("POST", "/ui/commands/" + encodeURIComponent(commandId), { input: input || {}, route_params: routeParams || {} });
  if (r.ok) toast((r.body && r.body.message) || "Done.");
  else toast(errorText(r), true);
  return r;
}

async function startWorkflow(workflowId, input) {
  const r = await api("POST", "/ui/workflows/" + encodeURIComponent(workflowId) + "/start", { input });
  if (!r.ok) { toast(errorText(r), true); return; }
  toast("Workflow started.");
  location.hash = "#/wi/" + (r.body.id || r.body.instance_id);
}

// ---- menu ----------------------------------------------------------------
async function renderMenu() {
  const menu = $("#menu");
  menu.replaceChildren();
  const r = await api("GET", "/ui/navigation");
  if (!r.ok) { menu.append(el("p", { class: "muted" }, errorText(r))); return; }
  for (const group of r.body.items || []) {
    menu.append(el("h4", {}, group.label));
    for (const item of group.children || [group]) {
      if (!item.page_id && !item.route) continue;
      const href = item.page_id ? "#/p/" + item.page_id : routeHash(item.route);
      const badge = item.badge ? el("span", { class: "badge " + (item.badge.style || "") }, item.badge.value) : null;
      menu.append(el("a", { href, "data-page": item.page_id || "" }, el("span", {}, item.label), badge));
    }
  }
  menu.append(el("h4", {}, "Workflows"));
  menu.append(el("a", { href: "#/w" }, el("span", {}, "Instances and graphs")));
}

// ---- pages ---------------------------------------------------------------
async function renderPage(view, pageId, params) {
  const meta = await api("GET", "/ui/pages/" + encodeURIComponent(pageId));
  if (!meta.ok) { view.append(el("p", { class: "error" }, errorText(meta))); return; }
  const page = meta.body;
  view.append(el("h2", {}, page.title || pageId));
  if (page.table) return renderTable(view, page, params);
  let data = await api("GET", "/ui/pages/" + encodeURIComponent(pageId) + "/data" + query(params));
  if (data.status === 404) {
    // No data source on the page: the record its edit form loads.
    const formAction = (page.actions || []).find((a) => a.type === "form" && (state.site.forms || {})[a.form_id]);
    if (formAction) {
      const names = state.site.forms[formAction.form_id].load_params || [];
      const values = Object.values(params);
      const q = {};
      names.forEach((n, i) => (q[n] = params[n] != null ? params[n] : values[i]));
      const loaded = await api("GET", "/ui/forms/" + encodeURIComponent(formAction.form_id) + "/data" + query(q));
      if (loaded.ok) data = loaded;
    }
  }
  const record = data.ok ? (data.body && (data.body.data || data.body)) : {};
  if (!data.ok) view.append(el("p", { class: "muted" }, "No data: " + errorText(data)));
  const actions = el("div", { class: "actions" });
  for (const action of page.actions || []) {
    const st = actionState(action, record);
    if (!st.show) continue;
    actions.append(el("button", {
      class: action.style === "danger" ? "danger" : action.style === "primary" ? "primary" : "",
      disabled: !st.enable,
      onclick: async () => {
        if (action.type === "form") location.hash = "#/f/" + action.form_id + query(params);
        else if (action.type === "command") {
          const r = await runCommand(action.command_id, mapParams(action.params, record, params), params, action.confirmation);
          if (r && r.ok) route();
        } else if (action.type === "workflow") startWorkflow(action.workflow_id, mapParams(action.params, record, params));
        else if (action.type === "navigate") location.hash = routeHash(action.navigate_to, Object.assign({}, record, params));
      },
    }, action.label));
  }
  view.append(actions);
  for (const section of page.sections || []) {
    const box = el("div", { class: "section" }, el("h3", {}, section.title || ""));
    if (section.table) {
      await renderTable(box, { id: pageId, table: section.table, section: section.id }, params);
    } else {
      const grid = el("div", { class: "grid" });
      for (const f of section.fields || []) {
        const value = get(record, f.field);
        grid.append(el("div", { class: "field" }, el("label", {}, f.label || f.field),
          el("div", { "data-field": f.field }, value == null ? "—" : typeof value === "object" ? JSON.stringify(value) : String(value))));
      }
      box.append(grid);
    }
    view.append(box);
  }
}

async function options(source) {
  if (!source) return null;
  if (source.static) return source.static;
  const id = source.lookup_id || source.id;
  if (!id) return null;
  const r = await api("GET", "/ui/lookups/" + encodeURIComponent(id));
  return r.ok ? (r.body.options || r.body.items || []) : [];
}

async function renderTable(view, page, params) {
  const table = page.table;
  const filterValues = {};
  for (const f of table.filters || []) if (f.default != null) filterValues[f.field] = f.default;
  const st = { page: 1, size: table.page_size || 25, sort: table.default_sort || "", dir: table.sort_dir || "asc", cursors: [""], selected: new Set() };
  const toolbar = el("div", { class: "toolbar" });
  for (const f of table.filters || []) {
    let input;
    const opts = await options(f.options);
    if (opts) {
      input = el("select", { name: f.field }, el("option", { value: "" }, "(any)"),
        opts.map((o) => el("option", { value: o.value, selected: String(filterValues[f.field]) === String(o.value) }, o.label)));
    } else {
      input = el("input", { name: f.field, value: filterValues[f.field] || "" });
    }
    input.addEventListener("change", () => { filterValues[f.field] = input.value; st.page = 1; st.cursors = [""]; load(); });
    toolbar.append(el("label", {}, f.label || f.field, input));
  }
  const bulk = el("span", {});
  for (const action of table.bulk_actions || []) {
    bulk.append(el("button", {
      onclick: async () => {
        const ids = [...st.selected];
        if (!ids.length) { toast("Select rows first.", true); return; }
        if (action.confirmation && !(await confirmDialog(action.confirmation))) return;
        for (const id of ids) await runCommand(action.command_id, { id }, { id });
        st.selected.clear();
        load();
      },
    }, action.label));
  }
  toolbar.append(bulk);
  const holder = el("div", {});
  const pager = el("div", { class: "pager" });
  view.append(toolbar, holder, pager);

  async function load() {
    const q = Object.assign({}, params, { page_size: st.size });
    for (const [k, v] of Object.entries(filterValues)) q[k] = v;
    if (!Object.prototype.hasOwnProperty.call(q, "priority")) { /* keep defaults as the BFF applies them */ }
    for (const f of table.filters || []) if (filterValues[f.field] === "") q[f.field] = "";
    if (st.cursors[st.page - 1]) q.cursor = st.cursors[st.page - 1]; else q.page = st.page;
    if (st.sort) { q.sort = st.sort; q.sort_dir = st.dir; }
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) if (v != null) qs.set(k, v);
    const path = page.section
      ? "/ui/pages/" + encodeURIComponent(page.id) + "/data?section=" + encodeURIComponent(page.section) + "&" + qs
      : "/ui/pages/" + encodeURIComponent(page.id) + "/data?" + qs;
    const r = await api("GET", path);
    holder.replaceChildren();
    pager.replaceChildren();
    if (!r.ok) { holder.append(el("p", { class: "error" }, errorText(r))); return; }
    const rows = r.body.items || [];
    const columns = (r.body.columns || table.columns || []).filter((c) => c.visible !== false);
    const head = el("tr", {}, table.selectable ? el("th", {}) : null,
      columns.map((c) => el("th", {
        class: c.sortable ? "sortable" : "",
        onclick: c.sortable ? () => { st.dir = st.sort === c.field && st.dir === "asc" ? "desc" : "asc"; st.sort = c.field; st.page = 1; load(); } : null,
      }, c.label || c.field, st.sort === c.field ? (st.dir === "asc" ? " ▲" : " ▼") : "")),
      (table.row_actions || []).length ? el("th", {}, "") : null);
    const body = el("tbody", {});
    for (const row of rows) {
      const tr = el("tr", { "data-id": row.id != null ? row.id : "" });
      if (table.selectable) {
        const box = el("input", { type: "checkbox", checked: st.selected.has(row.id) });
        box.addEventListener("change", () => (box.checked ? st.selected.add(row.id) : st.selected.delete(row.id)));
        tr.append(el("td", {}, box));
      }
      for (const c of columns) {
        const v = get(row, c.field);
        let cell = v == null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
        if (c.type === "link" && c.link) cell = el("a", { href: routeHash(c.link.route, mapParams(c.link.params, row, params)) }, cell);
        else if (c.type === "badge") cell = el("span", { class: "badge " + ((c.status_map || {})[v] || "") }, cell);
        tr.append(el("td", { "data-field": c.field }, cell));
      }
      if ((table.row_actions || []).length) {
        const td = el("td", {});
        for (const action of table.row_actions) {
          const s = actionState(action, row);
          if (!s.show) continue;
          td.append(el("button", {
            class: action.style === "danger" ? "danger" : "", disabled: !s.enable, "data-action": action.id,
            onclick: async () => {
              const mapped = mapParams(action.params, row, params);
              if (action.type === "navigate") location.hash = routeHash(action.navigate_to, row);
              else if (action.type === "form") location.hash = "#/f/" + action.form_id + query(mapped);
              else if (action.type === "workflow") startWorkflow(action.workflow_id, mapped);
              else {
                const input = Object.assign({}, mapped);
                if (action.confirmation) input.reason = input.reason || "Requested in the preview";
                const res = await runCommand(action.command_id, input, mapped, action.confirmation);
                if (res && res.ok) load();
              }
            },
          }, action.label));
        }
        tr.append(td);
      }
      body.append(tr);
    }
    holder.append(el("table", {}, el("thead", {}, head), body));
    const total = r.body.total;
    const pages = total != null ? Math.max(1, Math.ceil(total / st.size)) : null;
    const hasNext = r.body.next_cursor ? true : pages != null ? st.page < pages : rows.length === st.size;
    if (r.body.next_cursor) st.cursors[st.page] = r.body.next_cursor;
    pager.append(
      el("button", { disabled: st.page <= 1, onclick: () => { st.page -= 1; load(); } }, "‹ Previous"),
      el("span", { class: "page-info" }, "Page " + st.page + (pages ? " of " + pages : "") + (total != null ? " · " + total + " rows" : "")),
      el("button", { disabled: !hasNext, onclick: () => { st.page += 1; load(); } }, "Next ›"));
  }
  await load();
}

// ---- forms ---------------------------------------------------------------
function validate(field, value) {
  const rules = field.validation || {};
  const label = field.label || field.field;
  if (field.required && (value === "" || value == null)) return rules.message || label + " is required.";
  if (value === "" || value == null) return null;
  if (rules.min_length != null && value.length < rules.min_length) return rules.message || label + ": at least " + rules.min_length + " characters.";
  if (rules.max_length != null && value.length > rules.max_length) return rules.message || label + ": at most " + rules.max_length + " characters.";
  if (rules.pattern && !new RegExp(rules.pattern).test(value)) return rules.message || label + " has the wrong format.";
  if (rules.min != null && Number(value) < rules.min) return rules.message || label + ": at least " + rules.min + ".";
  if (rules.max != null && Number(value) > rules.max) return rules.message || label + ": at most " + rules.max + ".";
  return null;
}

async function formFields(form, record) {
  const inputs = [];
  const container = el("div", {});
  for (const section of form.sections || []) {
    const box = el("div", { class: "section" }, section.title ? el("h3", {}, section.title) : null);
    const grid = el("div", { class: "grid" });
    for (const f of section.fields || []) {
      const value = get(record || {}, f.field);
      const opts = await options(f.lookup || f.options);
      let input;
      if (opts) input = el("select", { name: f.field }, el("option", { value: "" }, "(choose)"),
        opts.map((o) => el("option", { value: o.value, selected: value != null && String(value) === String(o.value) }, o.label)));
      else if (f.type === "textarea") { input = el("textarea", { name: f.field, placeholder: f.placeholder || "" }); input.value = value == null ? "" : value; }
      else if (f.type === "checkbox" || f.type === "boolean") input = el("input", { type: "checkbox", name: f.field, checked: !!value });
      else input = el("input", { name: f.field, type: f.type === "number" ? "number" : "text", placeholder: f.placeholder || "", value: value == null ? "" : value });
      const error = el("div", { class: "error", "data-error": f.field });
      const node = el("div", { class: "field" }, el("label", {}, (f.label || f.field) + (f.required ? " *" : "")), input,
        f.help_text ? el("div", { class: "help" }, f.help_text) : null, error);
      inputs.push({ field: f, input, error });
      grid.append(node);
    }
    box.append(grid);
    container.append(box);
  }
  return { container, inputs };
}

function readInputs(inputs) {
  const values = {};
  let ok = true;
  for (const { field, input, error } of inputs) {
    const value = input.type === "checkbox" ? input.checked : input.value;
    const problem = input.type === "checkbox" ? null : validate(field, value);
    error.textContent = problem || "";
    if (problem) ok = false;
    if (value !== "") values[field.field] = field.type === "number" && value !== "" ? Number(value) : value;
  }
  return ok ? values : null;
}

function showServerErrors(inputs, r) {
  const details = (r.body && r.body.error && r.body.error.details) || {};
  const fields = details.fields || details.field_errors || details;
  for (const { field, error } of inputs) {
    const msg = Array.isArray(fields) ? (fields.find((f) => f.field === field.field) || {}).message : fields[field.field];
    if (msg) error.textContent = typeof msg === "string" ? msg : JSON.stringify(msg);
  }
}

async function renderForm(view, formId, params) {
  const meta = await api("GET", "/ui/forms/" + encodeURIComponent(formId));
  if (!meta.ok) { view.append(el("p", { class: "error" }, errorText(meta))); return; }
  const form = meta.body;
  view.append(el("h2", {}, form.title || formId));
  let record = {};
  if (Object.keys(params).length) {
    const names = ((state.site.forms || {})[formId] || {}).load_params || [];
    const values = Object.values(params);
    const q = Object.assign({}, params);
    names.forEach((n, i) => { if (q[n] == null) q[n] = values[i]; });
    const data = await api("GET", "/ui/forms/" + encodeURIComponent(formId) + "/data" + query(q));
    if (data.ok) record = data.body.data || {};
  }
  const { container, inputs } = await formFields(form, record);
  const submit = el("button", { class: "primary", type: "button", id: "submit" }, "Save");
  submit.addEventListener("click", async () => {
    const values = readInputs(inputs);
    if (!values) return;
    const r = await runCommand(form.submit_command, values, params);
    if (r && r.status === 422) showServerErrors(inputs, r);
    if (r && r.ok) {
      if (form.success_message) toast(form.success_message);
      if (form.success_route) location.hash = routeHash(form.success_route, params);
    }
  });
  view.append(container, el("div", { class: "actions" }, submit, el("button", { type: "button", onclick: () => history.back() }, "Back")));
}

// ---- workflows -----------------------------------------------------------
function workflowGraph(wf, current, visited) {
  const depth = { [wf.initial_step]: 0 };
  const queue = [wf.initial_step];
  while (queue.length) {
    const s = queue.shift();
    for (const t of wf.transitions || []) if (t.from === s && depth[t.to] == null) { depth[t.to] = depth[s] + 1; queue.push(t.to); }
  }
  const columns = {};
  for (const step of wf.steps || []) { const d = depth[step.id] != null ? depth[step.id] : 0; (columns[d] = columns[d] || []).push(step); }
  const W = 170, H = 44, GX = 60, GY = 28, pos = {};
  let maxRows = 0;
  for (const [d, steps] of Object.entries(columns)) {
    steps.forEach((s, i) => (pos[s.id] = { x: 10 + d * (W + GX), y: 10 + i * (H + GY) }));
    maxRows = Math.max(maxRows, steps.length);
  }
  const width = 20 + Object.keys(columns).length * (W + GX), height = 20 + maxRows * (H + GY);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", width); svg.setAttribute("height", height); svg.setAttribute("class", "graph");
  svg.innerHTML = '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0L10,5L0,10z" fill="#829ab1"/></marker></defs>';
  const add = (tag, attrs, text) => { const n = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); if (text) n.textContent = text; svg.append(n); return n; };
  for (const t of wf.transitions || []) {
    const a = pos[t.from], b = pos[t.to];
    if (!a || !b) continue;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const back = x2 <= a.x;
    const d = back ? `M${a.x + W / 2},${a.y + H} C${a.x + W / 2},${a.y + H + 30} ${b.x + W / 2},${b.y + H + 30} ${b.x + W / 2},${b.y + H}`
      : `M${x1},${y1} C${x1 + 30},${y1} ${x2 - 30},${y2} ${x2},${y2}`;
    add("path", { d, class: "edge" });
    add("text", { x: back ? (a.x + b.x + W) / 2 : (x1 + x2) / 2 - 20, y: back ? Math.max(a.y, b.y) + H + 26 : (y1 + y2) / 2 - 4, class: "label" }, t.event);
  }
  for (const s of wf.steps || []) {
    const p = pos[s.id];
    const cls = "step" + (s.id === current ? " current" : visited.has(s.id) ? " visited" : "") + (s.type === "terminal" ? " terminal" : "");
    const g = document.createElementNS(ns, "g"); g.setAttribute("class", cls); g.setAttribute("data-step", s.id); svg.append(g);
    const r = document.createElementNS(ns, "rect"); r.setAttribute("x", p.x); r.setAttribute("y", p.y); r.setAttribute("width", W); r.setAttribute("height", H); r.setAttribute("rx", 6); g.append(r);
    const t1 = document.createElementNS(ns, "text"); t1.setAttribute("x", p.x + 8); t1.setAttribute("y", p.y + 18); t1.textContent = s.id; g.append(t1);
    const t2 = document.createElementNS(ns, "text"); t2.setAttribute("x", p.x + 8); t2.setAttribute("y", p.y + 34); t2.setAttribute("class", "label"); t2.textContent = s.type || ""; g.append(t2);
  }
  return svg;
}

async function renderWorkflows(view) {
  view.append(el("h2", {}, "Workflows"));
  for (const wf of state.site.workflows) {
    view.append(el("div", { class: "section" }, el("h3", {}, wf.name || wf.id, " ", el("span", { class: "muted" }, wf.id)),
      workflowGraph(wf, null, new Set())));
  }
  const r = await api("GET", "/ui/workflows/instances");
  const list = (r.body && (r.body.items || r.body.instances)) || [];
  const rows = list.map((i) => el("tr", {}, el("td", {}, el("a", { href: "#/wi/" + i.id }, i.id)), el("td", {}, i.workflow_name || i.workflow_id), el("td", {}, (i.step && i.step.id) || ""), el("td", {}, i.status)));
  view.append(el("h3", {}, "Instances"), rows.length ? el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "Instance"), el("th", {}, "Workflow"), el("th", {}, "Step"), el("th", {}, "Status"))), el("tbody", {}, rows))
    : el("p", { class: "muted" }, r.ok ? "No instances yet: start one from a page action (an order's \"Start a return\")." : errorText(r)));
}

async function renderInstance(view, id) {
  const r = await api("GET", "/ui/workflows/instances/" + encodeURIComponent(id));
  if (!r.ok) { view.append(el("p", { class: "error" }, errorText(r))); return; }
  const inst = r.body;
  const wf = state.site.workflows.find((w) => w.id === inst.workflow_id) || { steps: [], transitions: [] };
  const history = inst.history || [];
  const current = (inst.step && inst.step.id) || "";
  const visited = new Set(history.flatMap((h) => [h.from_step, h.to_step]).filter(Boolean));
  view.append(el("h2", {}, (inst.workflow_name || wf.name || inst.workflow_id) + " ", el("span", { class: "muted" }, id)));
  view.append(el("p", {}, "Current step: ", el("strong", { id: "current-step" }, current), " · status ", el("strong", { id: "instance-status" }, inst.status),
    inst.assignee ? " · assignee " + inst.assignee : ""));
  view.append(el("div", { class: "section" }, workflowGraph(wf, current, visited)));
  const step = (wf.steps || []).find((s) => s.id === current) || inst.step || {};
  const events = inst.allowed_events || (wf.transitions || []).filter((t) => t.from === current && t.event !== "timeout").map((t) => t.event);
  if (events.length) {
    let inputs = [];
    const box = el("div", { class: "section" }, el("h3", {}, step.name || current));
    const formId = (inst.step && inst.step.form_id) || step.form_id;
    if (formId) {
      const form = await api("GET", "/ui/forms/" + encodeURIComponent(formId));
      if (form.ok) { const built = await formFields(form.body, {}); inputs = built.inputs; box.append(built.container); }
    }
    const buttons = el("div", { class: "actions" });
    for (const event of events) {
      buttons.append(el("button", { class: "primary", "data-event": event, onclick: async () => {
        const values = inputs.length ? readInputs(inputs) : {};
        if (!values) return;
        const res = await api("POST", "/ui/workflows/instances/" + encodeURIComponent(id) + "/events", { event, input: values });
        if (res.ok) { toast("Event " + event + " sent."); route(); } else { toast(errorText(res), true); if (res.status === 422) showServerErrors(inputs, res); }
      } }, event));
    }
    box.append(buttons);
    view.append(box);
  }
  view.append(el("h3", {}, "History"), el("table", {},
    el("thead", {}, el("tr", {}, el("th", {}, "#"), el("th", {}, "From"), el("th", {}, "Event"), el("th", {}, "To"), el("th", {}, "Actor"), el("th", {}, "At"))),
    el("tbody", {}, history.map((h) => el("tr", {}, el("td", {}, h.seq), el("td", {}, h.from_step || "—"), el("td", {}, h.event), el("td", {}, h.to_step), el("td", {}, h.actor), el("td", {}, h.at))))));
}

// ---- shell ---------------------------------------------------------------
async function route() {
  const view = $("#view");
  view.setAttribute("data-ready", "false");
  view.replaceChildren();
  const hash = location.hash || "#/";
  const [path, qs] = hash.slice(1).split("?");
  const params = Object.fromEntries(new URLSearchParams(qs || ""));
  const parts = path.split("/").filter(Boolean);
  for (const a of document.querySelectorAll("#menu a")) a.classList.toggle("active", a.getAttribute("href") === hash);
  try {
    if (parts[0] === "p") await renderPage(view, parts[1], params);
    else if (parts[0] === "f") await renderForm(view, parts[1], params);
    else if (parts[0] === "w") await renderWorkflows(view);
    else if (parts[0] === "wi") await renderInstance(view, parts[1]);
    else view.append(el("h2", {}, "Preview"), el("p", {}, "Pick a role above and a page in the menu. Data comes from the backends the BFF is configured with; commands run for real."),
      el("p", { class: "muted" }, state.site.pages.length + " pages, " + state.site.workflows.length + " workflows loaded."));
  } catch (err) {
    view.append(el("p", { class: "error" }, String(err)));
  }
  view.setAttribute("data-ready", "true");
}

async function signIn(role) {
  state.role = role;
  const res = await fetch("/preview/token", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ roles: [role] }) });
  state.token = (await res.json()).token;
  await renderMenu();
  await route();
}

async function main() {
  state.site = await (await fetch("/preview/site")).json();
  const select = $("#role");
  for (const role of state.site.roles) select.append(el("option", { value: role }, role));
  const wanted = new URLSearchParams(location.search).get("role");
  if (wanted && state.site.roles.includes(wanted)) select.value = wanted;
  else if (state.site.roles.includes("admin")) select.value = "admin";
  select.addEventListener("change", () => signIn(select.value));
  window.addEventListener("hashchange", route);
  await signIn(select.value);
}
main();

// The grid tree, one level at a time: its roots come from the operator's jurisdiction
// and the registry by code boundaries (a city-wide operator over several counties sees
// the counties; an operator of one community sees that community), and a node's
// children are read (`GET /v1/presence?prefix=…`) only when it is opened. No request
// ever asks for every lead of the city: leads are listed only inside one grid.

import { byId, delegate, el, fill } from "../lib/dom.js";
import { num, t } from "../lib/i18n.js";
import { throttled } from "../lib/util.js";
import { api, panelLoad } from "./api.js";

let store;
let nodes = new Map(); // code -> {code, name, online, children: [codes]|null, leads, open}
let roots = [];
let rootParent = null; // the area whose children are the roots (city-wide operators)
const targets = new Set();
let load;
let refreshOpen;

const presence = (code, leads) =>
  api("GET", `/v1/presence?prefix=${encodeURIComponent(code)}${leads ? "&leads=true" : ""}`);

function node(code) {
  if (!nodes.has(code)) nodes.set(code, { code, name: null, online: 0, children: null, leads: null, open: false });
  return nodes.get(code);
}

/** Takes a presence answer into the tree: the node's count and name, its children. */
function take(p) {
  const n = node(p.prefix);
  n.online = p.online;
  if (p.name) n.name = p.name;
  n.children = p.children.map((c) => {
    const k = node(c.code);
    k.online = c.online;
    if (c.name) k.name = c.name;
    return c.code;
  });
  if (p.leads) n.leads = p.leads;
  return n;
}

/** Grids and micro-grids list who is online in them (a handful of people). */
const withLeads = (code) => code.length >= 16;

async function findRoots() {
  const scope = (store.state.claims && store.state.claims.scope) || "";
  nodes = new Map();
  if (scope) {
    rootParent = null;
    await open(scope);
    return [scope];
  }
  // Down the single-child chain above the counties (province, city), then the
  // children of where it branches or reaches a county.
  let p = await presence("");
  while (p.children.length === 1 && p.children[0].code.length < 6) p = await presence(p.children[0].code);
  take(p);
  rootParent = p.prefix;
  const list = p.children.map((c) => c.code);
  // One county (or one of anything): open it, as an operator would at once.
  if (list.length === 1) await open(list[0]);
  return list;
}

async function open(code) {
  const n = node(code);
  n.open = true;
  if (n.children === null || withLeads(code)) take(await presence(code, withLeads(code)));
  // A level with one child is opened through (e.g. the one kind of grid of a community).
  if (n.children.length === 1 && !withLeads(code)) await open(n.children[0]);
}

/** The level word for a code: 省, 市, 区县, 街道/乡镇, 社区/村, the grid kind, 网格, 微网格. */
function levelOf(code) {
  if (code.length === 13) return t(`grid_kind.${code[12]}`);
  if (code.length === 12 && code.endsWith("000")) return t("level_code.12_000");
  return t(`level_code.${code.length}`);
}

function label(n) {
  if (n.code.length === 13 || (n.code.length === 12 && n.code.endsWith("000") && !n.name)) return levelOf(n.code);
  return n.name || `${levelOf(n.code)} ${n.code.length > 6 ? n.code.slice(-3) : n.code}`;
}

function view(code) {
  const n = node(code);
  const leaf = n.code.length >= 19 || (n.children && n.children.length === 0 && !withLeads(n.code));
  const head = [
    el("input", { type: "checkbox", "data-action": "target", dataset: { code }, checked: targets.has(code), title: t("tree.target"), "aria-label": t("tree.target") }),
    el("span", { class: "name", title: code }, label(n)),
    el("span", { class: "count", dataset: { code } }, num(n.online)),
  ];
  if (leaf && !withLeads(n.code)) return el("div", { class: "leaf", dataset: { code } }, head);
  const kids = n.open
    ? [
        ...(n.children || []).map(view),
        ...(n.leads || []).map((l) => el("div", { class: "lead-online", dataset: { lead: l.id } }, `${l.id} · ${t(`roles.${l.role}`)} · ${l.channels.join("/")}`)),
        n.children === null ? el("p", { class: "muted" }, t("loading")) : null,
      ]
    : [];
  return el("details", { dataset: { code }, open: n.open }, el("summary", {}, head), kids);
}

function render() {
  if (!roots.length) {
    fill("tree", el("p", { class: "muted" }, t("loading")));
    return;
  }
  // A fold opened or closed on the page whose `toggle` has not run yet (it comes as a
  // task of its own) keeps its state through this re-render, which replaces the
  // element the event would have come from: a refresh never swallows a click.
  for (const d of byId("tree").querySelectorAll("details[data-code]")) {
    const n = nodes.get(d.dataset.code);
    if (!n || n.open === d.open) continue;
    n.open = d.open;
    if (d.open) {
      open(n.code).then(render, () => {
        n.open = false;
        render();
      });
    }
  }
  fill("tree", roots.map(view));
}

export function start(s) {
  store = s;
  load = panelLoad("tree-panel", async () => {
    roots = await findRoots();
    render();
  });
  // Counts of what is open now, every 2 s at most while phones come and go.
  refreshOpen = throttled(2000, async () => {
    if (!roots.length) return; // the first load retries by itself
    const codes = [...nodes.values()].filter((n) => n.open).map((n) => n.code);
    if (rootParent !== null) codes.unshift(rootParent);
    for (const code of codes) {
      try {
        take(await presence(code, withLeads(code)));
      } catch (_) {
        // a node that is gone or refused keeps its last count
      }
    }
    render();
  });
  const tree = byId("tree");
  delegate(tree, {
    target: (box) => {
      if (box.checked) targets.add(box.dataset.code);
      else targets.delete(box.dataset.code);
      const f = byId("f-codes");
      f.value = [...targets].join(" ");
      f.dispatchEvent(new Event("input", { bubbles: true }));
    },
  });
  // `toggle` does not bubble: caught on the way down.
  tree.addEventListener(
    "toggle",
    async (ev) => {
      const d = ev.target;
      if (!(d instanceof HTMLDetailsElement) || !d.dataset.code) return;
      const n = node(d.dataset.code);
      if (n.open === d.open) return;
      n.open = d.open;
      if (d.open) {
        try {
          await open(n.code);
        } catch (e) {
          n.open = false;
        }
      }
      render();
    },
    true
  );
  store.subscribe(["lang"], render);
  load();
}

export function refresh() {
  if (refreshOpen) refreshOpen();
}

export function onPresence() {
  if (refreshOpen) refreshOpen();
}

/** Clears the ticked targets (after an activation went out). */
export function clearTargets() {
  targets.clear();
  render();
}

// The HTTP API as the hub describes it (/v1/openapi.json), read in the browser: every
// operation with its parameters, body and answers, and the schemas they name. Nothing
// is loaded from anywhere but this hub.

import { byId, el, fill } from "../lib/dom.js";
import { initI18n, onLanguage, setLanguage, t } from "../lib/i18n.js";

let doc = null;

/// The name a `$ref` points at, or a short description of an inline schema.
function schemaName(s) {
  if (!s) return "";
  if (s.$ref) return s.$ref.split("/").pop();
  if (s.type === "array") return `[${schemaName(s.items)}]`;
  if (s.enum) return s.enum.filter((v) => v !== "").join(" | ");
  if (s.anyOf || s.oneOf) return (s.anyOf || s.oneOf).map(schemaName).join(" | ");
  return s.type || "object";
}

function operation(path, method, op) {
  const params = (op.parameters || []).map((p) =>
    el("li", {}, el("code", {}, p.name), ` (${p.in}) ${schemaName(p.schema)} — ${p.description || ""}`),
  );
  const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
  const answers = Object.entries(op.responses || {}).map(([code, r]) => {
    const media = r.content ? Object.entries(r.content)[0] : null;
    return el("li", {}, el("code", {}, code), ` ${r.description || ""}`, media ? ` — ${media[0]} ${schemaName(media[1].schema)}` : "");
  });
  return el(
    "section",
    { class: "api-op" },
    el("h3", {}, el("code", {}, `${method.toUpperCase()} ${path}`), " ", op.summary || ""),
    el("p", { class: "muted" }, (op.security || []).length ? t("api.needs_token") : t("api.no_token")),
    params.length ? el("div", {}, el("strong", {}, t("api.parameters")), el("ul", {}, params)) : "",
    body ? el("p", {}, el("strong", {}, t("api.body")), " ", schemaName(body.schema)) : "",
    el("div", {}, el("strong", {}, t("api.answers")), el("ul", {}, answers)),
  );
}

function render() {
  if (!doc) return;
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "other";
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(path, method, op));
    }
  }
  const schemas = Object.entries((doc.components && doc.components.schemas) || {}).map(([name, s]) =>
    el(
      "li",
      {},
      el("code", {}, name),
      s.properties
        ? ` { ${Object.entries(s.properties)
            .map(([k, v]) => `${k}${(s.required || []).includes(k) ? "" : "?"}: ${schemaName(v)}`)
            .join(", ")} }`
        : ` ${schemaName(s)}`,
    ),
  );
  fill(
    "api",
    el("h2", {}, `${doc.info.title} ${doc.info.version}`),
    ...[...byTag.entries()].map(([tag, ops]) => el("div", {}, el("h2", {}, tag), ...ops)),
    el("h2", {}, t("api.schemas")),
    el("ul", {}, schemas),
  );
}

async function main() {
  await initI18n();
  const lang = byId("lang");
  lang.addEventListener("change", () => setLanguage(lang.value));
  onLanguage(render);
  const msg = byId("api-msg");
  try {
    const res = await fetch("/v1/openapi.json");
    doc = await res.json();
    msg.textContent = "";
    render();
  } catch (e) {
    msg.className = "form-msg error";
    msg.textContent = t("form.refused", { why: e.message });
  }
}

main();

// Both pages in Simplified Chinese and English. The choice: the one the person made
// on the page (localStorage, and a cookie so that the hub's first paint matches), else
// the browser's languages, else Chinese. Text from the hub (titles, bodies, names) is
// never translated: only the pages' own words are.

import zh from "../i18n/zh-CN.js";
import en from "../i18n/en.js";

export const LANGUAGES = ["zh-CN", "en"];
// The hub serves each dictionary (`i18n/{lang}.json`) as a module: no extra round
// trip before the first render, and switching needs no request.
const DICTIONARIES = { "zh-CN": zh, en };
const listeners = new Set();
let lang = LANGUAGES[0];
let dict = {};

/** The page language a language tag asks for: any Chinese is zh-CN, any English en. */
function supported(tag) {
  const p = String(tag || "").split(/[-_]/)[0].toLowerCase();
  return p === "zh" ? "zh-CN" : p === "en" ? "en" : null;
}

function choose() {
  let saved = null;
  try {
    saved = localStorage.getItem("gridcast.lang");
  } catch (_) {}
  if (LANGUAGES.includes(saved)) return saved;
  const cookie = (document.cookie.match(/(?:^|;\s*)gridcast_lang=([^;]+)/) || [])[1];
  if (LANGUAGES.includes(cookie)) return cookie;
  for (const l of navigator.languages || [navigator.language]) {
    const s = supported(l);
    if (s) return s;
  }
  return LANGUAGES[0];
}

const load = (l) => DICTIONARIES[l] || {};

/** Translates the page's own marked elements (data-t, data-t-placeholder, …). */
export function translate(root = document) {
  for (const e of root.querySelectorAll("[data-t]")) e.textContent = t(e.dataset.t);
  for (const attr of ["placeholder", "title", "aria-label"]) {
    const key = `data-t-${attr}`;
    for (const e of root.querySelectorAll(`[${key}]`)) e.setAttribute(attr, t(e.getAttribute(key)));
  }
  document.documentElement.lang = lang;
  const picker = document.getElementById("lang");
  if (picker) picker.value = lang;
}

/** Takes the chosen language and translates the page. */
export function initI18n() {
  lang = choose();
  dict = load(lang);
  translate();
}

/** Switches the language, remembers it, and tells every view to re-render. */
export function setLanguage(l) {
  if (!LANGUAGES.includes(l)) return;
  dict = load(l);
  lang = l;
  try {
    localStorage.setItem("gridcast.lang", l);
  } catch (_) {}
  document.cookie = `gridcast_lang=${l}; path=/; max-age=31536000; SameSite=Strict`;
  translate();
  for (const f of listeners) f(l);
}

export const language = () => lang;
export const onLanguage = (f) => listeners.add(f);

/** The text of `key`, with `{name}` filled from `vars`. */
export function t(key, vars) {
  let s = dict[key];
  if (s === undefined) s = key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] === undefined ? m : String(vars[k])));
  return s;
}

/** A word of a closed list (level, category, status, role, timeline kind, …), or the value. */
export function term(kind, value) {
  const key = `${kind}.${value}`;
  return dict[key] === undefined ? String(value) : dict[key];
}

/** A readable sentence for a protocol error code, with the hub's message after it. */
export function errorText(code, message) {
  const sentence = dict[`error.${code}`];
  if (!sentence) return message ? `${message} (${code})` : String(code);
  return message ? `${sentence} ${t("error.detail", { message })}` : sentence;
}

/** Local time of an RFC 3339 instant. */
export function clock(iso) {
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

/** "3 分钟前" / "in 2 min" for an RFC 3339 instant. */
export function relative(iso, now = Date.now()) {
  const s = Math.round((Date.parse(iso) - now) / 1000);
  if (isNaN(s)) return String(iso);
  const f = new Intl.RelativeTimeFormat(lang, { numeric: "auto", style: "short" });
  const a = Math.abs(s);
  if (a < 60) return f.format(s, "second");
  if (a < 3600) return f.format(Math.round(s / 60), "minute");
  if (a < 86400) return f.format(Math.round(s / 3600), "hour");
  return f.format(Math.round(s / 86400), "day");
}

/** "4 分 05 秒后截止" / "overdue 12 s" until an RFC 3339 instant. */
export function timeLeft(iso, now = Date.now()) {
  const ms = Date.parse(iso) - now;
  const s = Math.round(Math.abs(ms) / 1000);
  const span = s >= 60 ? t("time.min_s", { m: Math.floor(s / 60), s: String(s % 60).padStart(2, "0") }) : t("time.s", { s });
  return ms >= 0 ? t("time.left", { span }) : t("time.overdue", { span });
}

/** A number in the page's language. */
export const num = (n) => Number(n).toLocaleString(lang);

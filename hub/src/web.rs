//! The web pages the hub serves: the command-center console (`/console`) and the lead
//! phone page (`/lead`). Plain HTML, CSS and JavaScript modules from `clients/web/`,
//! compiled into the binary (no build step, no separate web server, nothing from the
//! internet). They speak only the public API and protocol.
//!
//! Every page goes out with a Content-Security-Policy that allows scripts, styles and
//! connections from this hub only and no inline script, so text that reached a page as
//! markup could not run even if a page forgot to escape it (they set text, not HTML).
//!
//! Both pages are in Simplified Chinese and English. The hub renders the first paint in
//! the language the browser asks for (the `gridcast_lang` cookie the pages set when a
//! person picks one, else `Accept-Language`, else Chinese): an element marked
//! `data-t="key"` gets the text of `key` from `clients/web/i18n/{lang}.json`, an
//! attribute `data-t-placeholder="key"` (or `-title`, `-aria-label`) that attribute.
//! The pages translate themselves with the same dictionaries when the choice changes.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::Hub;

macro_rules! assets {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../../clients/web/", $name)))),*]
    };
}

/// (path under `/web/`, body).
const ASSETS: &[(&str, &str)] = assets![
    "gridcast.css",
    "i18n/en.json",
    "i18n/zh-CN.json",
    "lib/dom.js",
    "lib/i18n.js",
    "lib/incident.js",
    "lib/store.js",
    "lib/util.js",
    "console/api.js",
    "console/approvals.js",
    "console/detail.js",
    "console/escalations.js",
    "console/incidents.js",
    "console/issue.js",
    "console/main.js",
    "console/map.js",
    "console/reports.js",
    "console/tree.js",
    "directory/main.js",
    "api/main.js",
    "lead/main.js",
    "lead/session.js",
    "lead/views.js",
];

const CONSOLE: &str = include_str!("../../clients/web/console.html");
const LEAD: &str = include_str!("../../clients/web/lead.html");
const DIRECTORY: &str = include_str!("../../clients/web/directory.html");
const API: &str = include_str!("../../clients/web/api.html");

/// The languages of the pages, the first being the default.
pub(crate) const LANGUAGES: [&str; 2] = ["zh-CN", "en"];

fn asset(name: &str) -> Option<&'static str> {
    ASSETS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

type Dictionary = HashMap<String, String>;

/// The dictionaries, read once from the embedded JSON.
static DICTIONARIES: LazyLock<Vec<(&'static str, Dictionary)>> = LazyLock::new(|| {
    LANGUAGES
        .iter()
        .map(|lang| {
            let json = asset(&format!("i18n/{lang}.json")).expect("dictionary embedded");
            (
                *lang,
                serde_json::from_str(json).expect("the embedded dictionaries are valid JSON"),
            )
        })
        .collect()
});

/// Each page rendered once per language: (page, language) → HTML.
static RENDERED: LazyLock<HashMap<(&'static str, &'static str), String>> = LazyLock::new(|| {
    let mut out = HashMap::new();
    for (lang, dict) in DICTIONARIES.iter() {
        for (page, html) in [
            ("console", CONSOLE),
            ("lead", LEAD),
            ("directory", DIRECTORY),
            ("api", API),
        ] {
            out.insert((page, *lang), render(html, lang, dict));
        }
    }
    out
});

/// The language for a request: the page's remembered choice (cookie), else the
/// browser's languages by preference, else Chinese.
pub(crate) fn language(headers: &HeaderMap) -> &'static str {
    let cookie = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix("gridcast_lang="))
        .find_map(supported);
    if let Some(lang) = cookie {
        return lang;
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept_language::parse(accept)
        .iter()
        .find_map(|l| supported(l))
        .unwrap_or(LANGUAGES[0])
}

/// The page language a language tag asks for: any Chinese is `zh-CN`, any English `en`.
fn supported(tag: &str) -> Option<&'static str> {
    let primary = tag.split(['-', '_']).next()?.to_ascii_lowercase();
    match primary.as_str() {
        "zh" => Some("zh-CN"),
        "en" => Some("en"),
        _ => None,
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Fills a page template for one language: `<html lang>`, every `data-t` element's
/// text and every `data-t-{attribute}`'s attribute. A key missing from the dictionary
/// is left as the key itself (and the tests fail on it).
fn render(template: &str, lang: &str, dict: &Dictionary) -> String {
    const MARK: &str = " data-t";
    let text = |key: &str| escape(dict.get(key).map_or(key, String::as_str));
    let src = template.replacen(
        "<html lang=\"zh-CN\">",
        &format!("<html lang=\"{lang}\">"),
        1,
    );
    let mut out = String::with_capacity(src.len() * 2);
    let mut rest = src.as_str();
    while let Some(at) = rest.find(MARK) {
        let (head, tail) = rest.split_at(at);
        out.push_str(head);
        let after = &tail[MARK.len()..];
        // `data-t="key"` (the element's text) or `data-t-{attribute}="key"`.
        let name_len = match after.strip_prefix('-') {
            Some(a) => {
                1 + a
                    .bytes()
                    .take_while(|b| b.is_ascii_lowercase() || *b == b'-')
                    .count()
            }
            None => 0,
        };
        let key = (name_len != 1)
            .then(|| after[name_len..].strip_prefix("=\""))
            .flatten()
            .and_then(|v| v.split_once('"'))
            .map(|(k, _)| k);
        let Some(key) = key else {
            // Not a marker after all: copied through as it is.
            out.push_str(MARK);
            rest = after;
            continue;
        };
        let consumed = MARK.len() + name_len + 2 + key.len() + 1;
        out.push_str(&tail[..consumed]);
        let remaining = &tail[consumed..];
        if name_len > 1 {
            out.push_str(&format!(" {}=\"{}\"", &after[1..name_len], text(key)));
            rest = remaining;
        } else {
            // The element's text goes right after its start tag (the element is empty
            // in the template).
            let close = remaining.find('>').map_or(remaining.len(), |i| i + 1);
            out.push_str(&remaining[..close]);
            out.push_str(&text(key));
            rest = &remaining[close..];
        }
    }
    out.push_str(rest);
    out
}

/// The pages' routes.
pub(crate) fn routes() -> Router<Hub> {
    Router::new()
        .route("/", get(|| async { Redirect::temporary("/console") }))
        .route(
            "/console",
            get(|h: HeaderMap| async move { page(&h, "console") }),
        )
        .route("/lead", get(|h: HeaderMap| async move { page(&h, "lead") }))
        .route(
            "/directory",
            get(|h: HeaderMap| async move { page(&h, "directory") }),
        )
        .route("/api", get(|h: HeaderMap| async move { page(&h, "api") }))
        .route("/web/{*file}", get(serve_asset))
}

fn page(headers: &HeaderMap, name: &'static str) -> Response {
    // The lead page's WebSocket goes to this same host; CSP's 'self' does not cover
    // ws:// in every browser, so the host is named.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".:-[]".contains(&b))
        })
        .unwrap_or("localhost");
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' ws://{host} wss://{host}; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    );
    let lang = language(headers);
    let html = RENDERED
        .get(&(name, lang))
        .map_or("", String::as_str)
        .to_owned();
    let mut r = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::VARY, "Accept-Language, Cookie"),
        ],
        html,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r.headers_mut().insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(if lang == "en" { "en" } else { "zh-CN" }),
    );
    r
}

/// A dictionary as a JavaScript module (`/web/i18n/{lang}.js`), so that the pages get
/// it in their module graph, fetched beside their other modules, not after them.
static DICTIONARY_MODULES: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    LANGUAGES
        .iter()
        .map(|lang| {
            let json = asset(&format!("i18n/{lang}.json")).expect("dictionary embedded");
            (
                format!("i18n/{lang}.js"),
                format!("export default {json};\n"),
            )
        })
        .collect()
});

async fn serve_asset(Path(file): Path<String>) -> Response {
    let kind = match file.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json; charset=utf-8",
        _ => "application/octet-stream",
    };
    let body = asset(&file).or_else(|| DICTIONARY_MODULES.get(&file).map(String::as_str));
    match body {
        Some(body) => (
            [
                (header::CONTENT_TYPE, kind),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_language_follows_the_cookie_then_the_browser_then_chinese() {
        assert_eq!(language(&headers(&[])), "zh-CN");
        assert_eq!(
            language(&headers(&[("accept-language", "en-US,en;q=0.9")])),
            "en"
        );
        assert_eq!(
            language(&headers(&[("accept-language", "fr-FR,en;q=0.5,zh;q=0.8")])),
            "zh-CN"
        );
        assert_eq!(language(&headers(&[("accept-language", "de-DE")])), "zh-CN");
        assert_eq!(
            language(&headers(&[
                ("accept-language", "zh-CN"),
                ("cookie", "a=1; gridcast_lang=en")
            ])),
            "en"
        );
    }

    #[test]
    fn every_marked_element_gets_its_text_in_both_languages() {
        for (lang, dict) in DICTIONARIES.iter() {
            for (page, html) in [
                ("console", CONSOLE),
                ("lead", LEAD),
                ("directory", DIRECTORY),
                ("api", API),
            ] {
                let out = render(html, lang, dict);
                assert!(out.contains(&format!("<html lang=\"{lang}\">")), "{page}");
                // Every key the template names is in the dictionary.
                for part in html.split(" data-t").skip(1) {
                    let key = part
                        .split_once("=\"")
                        .and_then(|(_, k)| k.split_once('"'))
                        .map(|(k, _)| k)
                        .unwrap();
                    assert!(dict.contains_key(key), "{lang}: {page} uses {key:?}");
                }
            }
        }
        let (_, zh) = &DICTIONARIES[0];
        let mut d = Dictionary::new();
        d.insert("a".into(), "<登录>".into());
        d.insert("p".into(), "粘贴\"令牌\"".into());
        let out = render(
            "<html lang=\"zh-CN\"><b data-t=\"a\"></b><input data-t-placeholder=\"p\">",
            "zh-CN",
            &d,
        );
        assert_eq!(
            out,
            "<html lang=\"zh-CN\"><b data-t=\"a\">&lt;登录&gt;</b><input data-t-placeholder=\"p\" placeholder=\"粘贴&quot;令牌&quot;\">"
        );
        // What only looks like a marker is copied through untouched.
        for odd in [
            "<i data-t-=\"a\">",
            "<i data-tx=\"a\">",
            "<i data-t-title>",
            "<i data-t=\"a>",
        ] {
            assert_eq!(render(odd, "zh-CN", &d), odd);
        }
        // Marked elements are empty in the templates (their text comes from the dictionary).
        for html in [CONSOLE, LEAD, DIRECTORY, API] {
            for part in html.split(" data-t=\"").skip(1) {
                let after_tag = part.split_once('>').map(|(_, r)| r).unwrap();
                assert!(
                    after_tag.starts_with("</"),
                    "a marked element has content: {part:.40}"
                );
            }
        }
        assert!(!zh.is_empty());
    }

    #[test]
    fn everything_the_pages_link_to_is_served() {
        for html in [CONSOLE, LEAD, DIRECTORY, API] {
            for part in html
                .split("href=\"/web/")
                .skip(1)
                .chain(html.split("src=\"/web/").skip(1))
            {
                let file = part.split('"').next().unwrap();
                assert!(
                    asset(file).is_some() || DICTIONARY_MODULES.contains_key(file),
                    "{file} is linked but not served"
                );
            }
        }
        assert!(DICTIONARY_MODULES["i18n/zh-CN.js"].starts_with("export default {"));
    }

    #[test]
    fn both_dictionaries_have_the_same_keys() {
        let (_, zh) = &DICTIONARIES[0];
        let (_, en) = &DICTIONARIES[1];
        let mut missing: Vec<&String> = zh.keys().filter(|k| !en.contains_key(*k)).collect();
        missing.extend(en.keys().filter(|k| !zh.contains_key(*k)));
        assert!(
            missing.is_empty(),
            "keys in one dictionary only: {missing:?}"
        );
    }
}

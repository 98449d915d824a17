//! A real headless Chromium (Debian's `chromium` package), driven over the DevTools
//! protocol with the WebSocket client the project already has: no browser-automation
//! crate, no chromedriver. Each page gets its own browser context (its own storage,
//! like a separate browser profile), a viewport and an optional phone emulation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

type Replies = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// Requests a page makes that the browser answers itself, as a network that fails
/// would: session id → (part of the URL, how many more times).
type Failures = Arc<Mutex<HashMap<String, (String, u32)>>>;

struct Inner {
    out: mpsc::Sender<String>,
    replies: Replies,
    next: AtomicU64,
    failures: Failures,
}

impl Inner {
    async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.replies.lock().unwrap().insert(id, tx);
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.out
            .send(msg.to_string())
            .await
            .expect("chromium connection open");
        match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(Ok(v))) => v,
            Ok(Ok(Err(e))) => panic!("chromium {method}: {e}"),
            _ => panic!("chromium {method}: no answer in 30 s"),
        }
    }
}

/// The browser process; killed when dropped.
pub struct Browser {
    inner: Arc<Inner>,
    _child: tokio::process::Child,
    dir: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where Chromium is: `GRIDCAST_CHROMIUM`, else Debian's `/usr/bin/chromium`.
pub fn binary() -> PathBuf {
    std::env::var_os("GRIDCAST_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| {
            ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
        })
        .expect(
            "Chromium is needed for the web page tests: apt-get install chromium (.ci/run does)",
        )
}

impl Browser {
    /// Starts headless Chromium on a free DevTools port.
    pub async fn start(name: &str) -> Browser {
        let dir = super::tmp_dir(&format!("chromium-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = tokio::process::Command::new(binary())
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--no-default-browser-check",
                "--mute-audio",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", dir.display()))
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromium");
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(l)) = lines.next_line().await {
                if let Some(u) = l.split("DevTools listening on ").nth(1) {
                    return u.trim().to_owned();
                }
            }
            panic!("chromium ended without a DevTools address");
        })
        .await
        .expect("chromium started within 60 s");
        // Keep draining its stderr so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (ws, _) = tokio_tungstenite::connect_async_with_config(&url, None, false)
            .await
            .expect("connect to chromium");
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::channel::<String>(256);
        let replies: Replies = Arc::default();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(Message::text(m)).await.is_err() {
                    return;
                }
            }
        });
        let inner = Arc::new(Inner {
            out,
            replies: replies.clone(),
            next: AtomicU64::new(1),
            failures: Failures::default(),
        });
        let events = inner.clone();
        tokio::spawn(async move {
            while let Some(Ok(m)) = stream.next().await {
                let Message::Text(t) = m else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&t) else {
                    continue;
                };
                if let Some(id) = v["id"].as_u64() {
                    if let Some(tx) = replies.lock().unwrap().remove(&id) {
                        let r = match v.get("error") {
                            Some(e) => Err(e.to_string()),
                            None => Ok(v["result"].clone()),
                        };
                        let _ = tx.send(r);
                    }
                } else if v["method"] == "Fetch.requestPaused" {
                    let session = v["sessionId"].as_str().unwrap_or("").to_owned();
                    let id = v["params"]["requestId"].clone();
                    let url = v["params"]["request"]["url"].as_str().unwrap_or("");
                    let fail = {
                        let mut f = events.failures.lock().unwrap();
                        match f.get_mut(&session) {
                            Some((part, n)) if *n > 0 && url.contains(part.as_str()) => {
                                *n -= 1;
                                true
                            }
                            _ => false,
                        }
                    };
                    let events = events.clone();
                    tokio::spawn(async move {
                        let (method, params) = if fail {
                            let body = r#"{"error":{"code":"unavailable","message":"injected by the test"}}"#;
                            (
                                "Fetch.fulfillRequest",
                                json!({ "requestId": id, "responseCode": 503,
                                        "responseHeaders": [{ "name": "Content-Type", "value": "application/json" }],
                                        "body": base64::engine::general_purpose::STANDARD.encode(body) }),
                            )
                        } else {
                            ("Fetch.continueRequest", json!({ "requestId": id }))
                        };
                        events.call(Some(&session), method, params).await;
                    });
                } else if v["method"] == "Page.javascriptDialogOpening" {
                    // A confirm() answered yes, as an operator clicking OK would.
                    let session = v["sessionId"].as_str().map(str::to_owned);
                    let events = events.clone();
                    tokio::spawn(async move {
                        events
                            .call(
                                session.as_deref(),
                                "Page.handleJavaScriptDialog",
                                json!({ "accept": true }),
                            )
                            .await;
                    });
                }
            }
        });
        Browser {
            inner,
            _child: child,
            dir,
        }
    }

    /// A new page in its own browser context, `width`×`height`, as a phone if `mobile`.
    pub async fn page(&self, url: &str, width: u32, height: u32, mobile: bool) -> Page {
        self.page_in(None, url, width, height, mobile).await
    }

    /// The same, for a browser whose languages are `languages` (e.g. `"zh-CN,zh"`):
    /// its `Accept-Language` and `navigator.languages`.
    pub async fn page_in(
        &self,
        languages: Option<&str>,
        url: &str,
        width: u32,
        height: u32,
        mobile: bool,
    ) -> Page {
        self.page_with(languages, None, url, width, height, mobile)
            .await
    }

    /// One of the hub's pages, once it says it is online (`body[data-conn=online]`).
    pub async fn online_page(
        &self,
        languages: Option<&str>,
        url: &str,
        width: u32,
        height: u32,
        mobile: bool,
    ) -> Page {
        let p = self.page_in(languages, url, width, height, mobile).await;
        p.wait_for(
            "document.body.dataset.conn === 'online'",
            Duration::from_secs(15),
            &format!("{url} online"),
        )
        .await;
        p
    }

    /// The same, with `init` (JavaScript) run in the page before any of its own
    /// scripts, as a measuring probe.
    pub async fn page_with(
        &self,
        languages: Option<&str>,
        init: Option<&str>,
        url: &str,
        width: u32,
        height: u32,
        mobile: bool,
    ) -> Page {
        let ctx = self
            .inner
            .call(None, "Target.createBrowserContext", json!({}))
            .await["browserContextId"]
            .clone();
        let target = self
            .inner
            .call(
                None,
                "Target.createTarget",
                json!({ "url": "about:blank", "browserContextId": ctx }),
            )
            .await["targetId"]
            .clone();
        let session = self
            .inner
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await["sessionId"]
            .as_str()
            .unwrap()
            .to_owned();
        let page = Page {
            inner: self.inner.clone(),
            session,
            context: ctx,
        };
        page.call("Page.enable", json!({})).await;
        page.call("Runtime.enable", json!({})).await;
        if let Some(langs) = languages {
            let agent =
                self.inner.call(None, "Browser.getVersion", json!({})).await["userAgent"].clone();
            page.call(
                "Emulation.setUserAgentOverride",
                json!({ "userAgent": agent, "acceptLanguage": langs }),
            )
            .await;
        }
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )
        .await;
        if let Some(js) = init {
            page.call(
                "Page.addScriptToEvaluateOnNewDocument",
                json!({ "source": js }),
            )
            .await;
        }
        if mobile {
            page.call(
                "Emulation.setTouchEmulationEnabled",
                json!({ "enabled": true }),
            )
            .await;
        }
        page.goto(url).await;
        page
    }
}

/// One page (tab) of the browser.
pub struct Page {
    inner: Arc<Inner>,
    session: String,
    /// Its browser context (each page has its own: cookies, storage, permissions).
    context: Value,
}

impl Page {
    async fn call(&self, method: &str, params: Value) -> Value {
        self.inner.call(Some(&self.session), method, params).await
    }

    /// Where the page's geolocation says it is (granted, WGS 84 as the W3C API reports).
    pub async fn set_position(&self, lat: f64, lon: f64) {
        self.inner
            .call(
                None,
                "Browser.grantPermissions",
                json!({ "permissions": ["geolocation"], "browserContextId": self.context }),
            )
            .await;
        self.call(
            "Emulation.setGeolocationOverride",
            json!({ "latitude": lat, "longitude": lon, "accuracy": 10 }),
        )
        .await;
    }

    /// The next `times` requests whose URL contains `part` fail with a 503, answered by
    /// the browser itself (a flaky network between the page and the hub).
    pub async fn fail_requests(&self, part: &str, times: u32) {
        self.inner
            .failures
            .lock()
            .unwrap()
            .insert(self.session.clone(), (part.to_owned(), times));
        self.call(
            "Fetch.enable",
            json!({ "patterns": [{ "urlPattern": format!("*{part}*") }] }),
        )
        .await;
    }

    /// Reloads the page and waits for it to be loaded.
    pub async fn reload(&self) {
        self.eval("window.__reloading = 1").await;
        self.call("Page.reload", json!({})).await;
        self.wait_for(
            "document.readyState === 'complete' && window.__reloading === undefined",
            Duration::from_secs(20),
            "the page reloaded",
        )
        .await;
    }

    /// Opens `url` and waits for its document to be loaded.
    pub async fn goto(&self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
        self.wait_for(
            "document.readyState === 'complete' && location.href !== 'about:blank'",
            Duration::from_secs(20),
            &format!("{url} loaded"),
        )
        .await;
    }

    /// Evaluates JavaScript (promises awaited) and returns its value.
    pub async fn eval(&self, js: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": js, "awaitPromise": true, "returnByValue": true }),
            )
            .await;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("page script failed: {js}\n{e}");
        }
        r["result"]["value"].clone()
    }

    /// Waits until `js` is truthy (evaluated every 50 ms) and returns its value.
    pub async fn wait_for(&self, js: &str, limit: Duration, what: &str) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        let mut last = Value::Null;
        loop {
            let r = self
                .call(
                    "Runtime.evaluate",
                    json!({ "expression": js, "returnByValue": true }),
                )
                .await;
            if r.get("exceptionDetails").is_none() {
                last = r["result"]["value"].clone();
                let truthy = match &last {
                    Value::Null => false,
                    Value::Bool(b) => *b,
                    Value::Number(n) => n.as_f64() != Some(0.0),
                    Value::String(s) => !s.is_empty(),
                    _ => true,
                };
                if truthy {
                    return last;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what} (`{js}` was {last})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `action` (JavaScript with `e` bound to the element) on the first element
    /// matching `selector`, once there is one: waiting up to 15 s, as a person waits
    /// for the page to show it.
    async fn on_element(&self, selector: &str, action: &str) {
        let sel = serde_json::to_string(selector).unwrap();
        self.wait_for(
            &format!("document.querySelector({sel}) !== null"),
            Duration::from_secs(15),
            &format!("an element {selector}"),
        )
        .await;
        let js = format!(
            "(() => {{ const e = document.querySelector({sel}); if (!e) return false; {action}; return true; }})()"
        );
        assert_eq!(self.eval(&js).await, json!(true), "no element {selector}");
    }

    /// Clicks the first element matching `selector`, once there is one.
    pub async fn click(&self, selector: &str) {
        self.on_element(selector, "e.click()").await;
    }

    /// Sets the value of a form field as typing would (an `input` event follows), once
    /// the field is there.
    pub async fn fill(&self, selector: &str, value: &str) {
        let v = serde_json::to_string(value).unwrap();
        let action =
            format!("e.value = {v}; e.dispatchEvent(new Event('input', {{bubbles: true}}))");
        self.on_element(selector, &action).await;
    }

    /// The text of the first element matching `selector`, or `None`.
    pub async fn text(&self, selector: &str) -> Option<String> {
        let js = format!(
            "(() => {{ const e = document.querySelector({}); return e ? e.textContent : null; }})()",
            serde_json::to_string(selector).unwrap()
        );
        self.eval(&js).await.as_str().map(str::to_owned)
    }

    /// A PNG of the page written to `path`: the viewport, or the whole page if `full`.
    pub async fn screenshot(&self, path: &Path, full: bool) {
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": full }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().expect("screenshot data"))
            .expect("screenshot data is base64");
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }
}

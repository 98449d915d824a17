//! The console and the lead phone page in a real headless Chromium: activation from the
//! console form to a phone and back, a hub restart under an open lead page, the task
//! loop and closing, markup in titles shown as text, and the README's screenshots.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use gridcast_clients::lead::LeadClient;
use gridcast_protocol::frame::{ClientFrame, ServerFrame};
use gridcast_protocol::model::Response;
use serde_json::json;
use support::chromium::{Browser, Page};
use support::*;

const WAIT: Duration = Duration::from_secs(15);

/// The two-grid city with the sample city's task kinds.
fn city() -> gridcast_protocol::registry::RegistryDoc {
    let mut doc = two_grid_city();
    doc.task_kinds = gridcast_hub::sample::sample_city().task_kinds;
    doc
}

async fn console_page(b: &Browser, http: &str) -> Page {
    let url = format!("{http}/console#token={}", admin_token());
    let p = b.online_page(None, &url, 1280, 900, false).await;
    // The token left the address bar for sessionStorage.
    assert_eq!(p.eval("location.hash").await, json!(""));
    p
}

async fn lead_page(b: &Browser, http: &str, lead: &str) -> Page {
    let url = format!("{http}/lead#token={}", lead_token(lead));
    b.online_page(None, &url, 360, 740, true).await
}

/// The console's cell for one grid of the selected incident.
fn grid_cell(grid: &str, column: &str) -> String {
    format!(
        "(document.querySelector('#detail tr[data-grid=\"{grid}\"] td.{column}') || {{}}).textContent"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activation_from_the_console_form_reaches_the_phone_and_its_ack_moves_the_bars() {
    let hub = TestHub::start("web-activation", Some(city()), |_| {}).await;
    let b = Browser::start("activation").await;
    let console = console_page(&b, &hub.http()).await;
    let phone = lead_page(&b, &hub.http(), "GL1").await;
    // The grid tree shows the phone online in its grid.
    console
        .wait_for(
            &format!("(document.querySelector('#tree .count[data-code=\"{G1}\"]') || {{}}).textContent === '1'"),
            WAIT,
            "G1 online 1 in the tree",
        )
        .await;

    console.fill("#f-title", "Flood at the underpass").await;
    console
        .fill("#f-body", "Water rising; close the road.")
        .await;
    console.fill("#f-codes", G1).await;
    console.click("#f-drill").await;
    console.click("#f-submit").await;

    phone
        .wait_for(
            "(document.querySelector('.incident .title') || {}).textContent === 'Flood at the underpass'",
            WAIT,
            "the activation on the phone",
        )
        .await;
    assert_eq!(
        phone.text(".incident .badge.drill").await.as_deref(),
        Some("DRILL"),
        "a drill is marked on the phone"
    );
    assert!(
        phone
            .text(".incident .left")
            .await
            .unwrap()
            .contains("left"),
        "time left to answer shown"
    );
    // The console selected the new incident: G1 has 3 recipients (its micro-grid lead is
    // counted in the micro-grid), the phone's receipt
    // makes GL1 delivered.
    console
        .wait_for(
            &format!("{} === '1'", grid_cell(G1, "delivered")),
            WAIT,
            "delivered 1",
        )
        .await;
    assert_eq!(console.eval(&grid_cell(G1, "accepted")).await, json!("0"));
    assert_eq!(
        console.text("#detail .badge.drill").await.as_deref(),
        Some("DRILL")
    );

    let tapped = Instant::now();
    phone.click(".incident .accept").await;
    console
        .wait_for(
            &format!("{} === '1'", grid_cell(G1, "accepted")),
            Duration::from_secs(1),
            "the console's G1 bar within a second of the tap",
        )
        .await;
    println!(
        "console showed the ack {:?} after the tap",
        tapped.elapsed()
    );
    let width = console
        .eval(&format!(
            "document.querySelector('#detail tr[data-grid=\"{G1}\"] .seg.accepted').style.width"
        ))
        .await;
    assert_eq!(console.eval(&grid_cell(G1, "accepted")).await, json!("1"));
    assert_eq!(
        width,
        json!("33.3333%"),
        "1 of the 3 recipients in G1 accepted"
    );
    console
        .wait_for(
            "(document.querySelector('#detail table.recipients tr[data-lead=\"GL1\"]') || {dataset: {}}).dataset.status === 'accepted'",
            WAIT,
            "GL1 accepted in the recipients table",
        )
        .await;
    phone
        .wait_for(
            "document.querySelector('.incident .status').textContent.includes('accepted')",
            WAIT,
            "the phone shows its answer",
        )
        .await;
    // The recipients filter narrows the table to that status.
    console
        .eval("(() => { const s = document.getElementById('r-filter'); s.value = 'accepted'; s.dispatchEvent(new Event('change', {bubbles: true})); })()")
        .await;
    console
        .wait_for(
            "document.querySelectorAll('#detail table.recipients tbody tr').length === 1",
            WAIT,
            "only accepted recipients listed",
        )
        .await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lead_page_survives_a_hub_restart_and_resyncs() {
    let dir = tmp_dir("web-restart");
    std::fs::create_dir_all(&dir).unwrap();
    let registry = dir.join("registry.json");
    std::fs::write(&registry, serde_json::to_vec(&city()).unwrap()).unwrap();
    let port = free_port();
    let http = format!("http://127.0.0.1:{port}");
    let args = |d: &PathBuf| {
        vec![
            std::ffi::OsString::from("--data-dir"),
            d.join("data").into_os_string(),
            std::ffi::OsString::from("--registry"),
            registry.clone().into_os_string(),
        ]
    };
    let a = args(&dir);
    let argv: Vec<&std::ffi::OsStr> = a.iter().map(|s| s.as_os_str()).collect();
    let mut child = spawn_hub(port, &argv).await;
    let ops = gridcast_clients::console::ConsoleClient::new(&http, &admin_token());
    let created = ops
        .activate(&activation("Chemical leak", &[G1], &[]))
        .await
        .unwrap();

    let b = Browser::start("restart").await;
    let phone = lead_page(&b, &http, "A1").await;
    phone
        .wait_for(
            "(document.querySelector('.incident .title') || {}).textContent === 'Chemical leak'",
            WAIT,
            "the incident from the sync",
        )
        .await;
    phone.fill(".incident .ack-note", "on my way").await;
    phone.click(".incident .accept").await;
    phone
        .wait_for(
            "(document.querySelector('.incident .note') || {}).textContent === 'Accept: recorded ✓'",
            WAIT,
            "the ack recorded",
        )
        .await;

    child.kill().await.unwrap();
    phone
        .wait_for(
            "document.body.dataset.conn === 'reconnecting'",
            WAIT,
            "the page says it is reconnecting",
        )
        .await;
    assert!(
        phone
            .text("#conn")
            .await
            .unwrap()
            .starts_with("reconnecting")
    );
    let mut child = spawn_hub(port, &argv).await;
    // Changed while the page is away or reconnecting: the page must show it.
    let update = json!({ "body": "Wind turned north: go to the east exit." });
    let _: serde_json::Value = ops
        .send_json(
            reqwest::Method::POST,
            &format!("/v1/incidents/{}/updates", created.id),
            &update,
        )
        .await
        .unwrap();
    phone
        .wait_for(
            "document.body.dataset.conn === 'online'",
            Duration::from_secs(30),
            "the page back online by itself",
        )
        .await;
    phone
        .wait_for(
            "(document.querySelector('.incident .body') || {}).textContent === 'Wind turned north: go to the east exit.'",
            WAIT,
            "the incident's current state after the restart",
        )
        .await;
    assert!(
        phone
            .text(".incident .status")
            .await
            .unwrap()
            .contains("accepted"),
        "the answer recorded before the restart is still shown"
    );
    let detail: serde_json::Value = ops
        .get(&format!("/v1/incidents/{}", created.id))
        .await
        .unwrap();
    assert_eq!(detail["counts"]["accepted"], json!(1), "{detail}");
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_task_is_accepted_and_done_on_the_phone_then_the_console_closes() {
    let hub = TestHub::start("web-task", Some(city()), |_| {}).await;
    let created = hub
        .console("")
        .activate(&activation("Evacuate block 3", &[G2], &[]))
        .await
        .unwrap();
    let b = Browser::start("task").await;
    let console = console_page(&b, &hub.http()).await;
    let phone = lead_page(&b, &hub.http(), "GL2").await;
    console
        .wait_for(
            &format!(
                "document.querySelector('#incidents [data-id=\"{}\"]')",
                created.id
            ),
            WAIT,
            "the incident listed",
        )
        .await;
    console
        .click(&format!("#incidents [data-id=\"{}\"]", created.id))
        .await;
    console
        .wait_for(
            "!document.getElementById('detail').hidden && (document.querySelector('#d-head .title') || {}).textContent === 'Evacuate block 3' && document.querySelector('#t-kind option')",
            WAIT,
            "the incident's detail with its task form, as a person waits to see it",
        )
        .await;
    console
        .fill("#t-title", "Check the elderly at no. 12")
        .await;
    console.fill("#t-detail", "Two residents, 3rd floor").await;
    console.fill("#t-who", "GL2").await;
    console.click("#task-form button[type=submit]").await;

    phone
        .wait_for(
            "(document.querySelector('.task .title') || {}).textContent === 'Check the elderly at no. 12'",
            WAIT,
            "the task on the phone",
        )
        .await;
    phone.click(".task .task-accept").await;
    phone
        .wait_for(
            "document.querySelector('.task .task-done')",
            WAIT,
            "the task accepted",
        )
        .await;
    phone
        .fill(".task .task-note", "both moved to the gym")
        .await;
    phone.click(".task .task-done").await;
    phone
        .wait_for(
            "(document.querySelector('.task .note') || {}).textContent === 'Task done: recorded ✓'",
            WAIT,
            "the phone's done recorded",
        )
        .await;
    console
        .wait_for(
            "(document.querySelector('#detail table.tasks tbody tr') || {dataset: {}}).dataset.status === 'done'",
            WAIT,
            "the console shows the task done",
        )
        .await;
    assert!(
        console
            .text("#detail table.tasks tbody tr")
            .await
            .unwrap()
            .contains("both moved to the gym")
    );

    console.fill("#c-reason", "all residents safe").await;
    console.click("#close-form button[type=submit]").await;
    console
        .wait_for(
            &format!("document.querySelector('#incidents [data-id=\"{}\"]').classList.contains('is-closed')", created.id),
            WAIT,
            "the console shows it closed",
        )
        .await;
    phone
        .wait_for(
            "(document.querySelector('.incident .muted') || {}).textContent === 'This incident is closed.'",
            WAIT,
            "the phone shows it closed",
        )
        .await;
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_in_titles_and_reports_is_shown_as_text() {
    let hub = TestHub::start("web-escape", Some(city()), |_| {}).await;
    let title = r#"<img src=x onerror="window.__xss=1"><b id="inj">bold</b>"#;
    let mut req = activation(title, &[G1], &[]);
    req.body = "<script>window.__xss=2</script>".into();
    let b = Browser::start("escape").await;
    let console = console_page(&b, &hub.http()).await;
    let phone = lead_page(&b, &hub.http(), "GL1").await;
    hub.console("").activate(&req).await.unwrap();
    let js_title = serde_json::to_string(title).unwrap();
    for (page, sel) in [
        (&phone, ".incident .title"),
        (&console, "#incidents .title"),
    ] {
        page.wait_for(
            &format!("(document.querySelector('{sel}') || {{}}).textContent === {js_title}"),
            WAIT,
            "the title as text",
        )
        .await;
        assert_eq!(
            page.eval("document.getElementById('inj') === null").await,
            json!(true)
        );
        assert_eq!(page.eval("window.__xss === undefined").await, json!(true));
    }
    assert_eq!(
        phone.text(".incident .body").await.as_deref(),
        Some("<script>window.__xss=2</script>")
    );
    // An upward report with markup reaches the console's panel as text.
    let (mut lead, _) = LeadClient::connect(&hub.ws_url(), &lead_token("GL2"))
        .await
        .unwrap();
    lead.sync().await.unwrap();
    let report = ClientFrame::Report {
        category: gridcast_protocol::Category::Accident,
        title: "<i id=\"inj2\">tree down</i>".into(),
        detail: "blocks the lane".into(),
        grid: gridcast_protocol::GridCode::parse(G2).unwrap(),
        location: None,
        reference: Some("r1".into()),
    };
    let (answer, _) = lead.request(&report).await.unwrap();
    answer.unwrap();
    console
        .wait_for(
            "(document.querySelector('#reports .report .title') || {}).textContent === '<i id=\"inj2\">tree down</i>'",
            WAIT,
            "the report as text",
        )
        .await;
    assert_eq!(
        console
            .eval("document.getElementById('inj2') === null")
            .await,
        json!(true)
    );
    hub.stop().await;
}

/// The README's pictures: the console with a live drill and the phone page at 360 px.
/// Written to `GRIDCAST_SCREENSHOTS` (the repository's `docs/` when regenerating them),
/// else to a temporary directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_of_the_console_and_the_phone() {
    let hub = TestHub::start("web-shots", None, |_| {}).await; // the sample city
    let out = std::env::var_os("GRIDCAST_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| tmp_dir("screenshots"));
    // Thirty-nine phones of Xixi Street community 005 online; the drill reaches them and
    // some answer.
    let mut phones = Vec::new();
    for n in 2..=40 {
        let id = format!("L{n:04}");
        let (mut c, _) = LeadClient::connect(&hub.ws_url(), &lead_token(&id))
            .await
            .unwrap();
        c.sync().await.unwrap();
        phones.push(c);
    }
    let b = Browser::start("shots").await;
    // Chinese first: the README shows the pages as a Chinese browser gets them.
    let console = b
        .page_in(
            Some("zh-CN,zh;q=0.9"),
            &format!("{}/console#token={}", hub.http(), admin_token()),
            1280,
            900,
            false,
        )
        .await;
    let phone = b
        .page_in(
            Some("zh-CN,zh;q=0.9"),
            &format!("{}/lead#token={}", hub.http(), lead_token("L0001")),
            360,
            740,
            true,
        )
        .await;
    for p in [&console, &phone] {
        p.wait_for("document.body.dataset.conn === 'online'", WAIT, "online")
            .await;
        assert_eq!(
            p.eval("document.documentElement.lang").await,
            json!("zh-CN")
        );
    }
    let mut req = activation(
        "Flood warning: Xixi wetland overflow",
        &["330106004005"],
        &[],
    );
    req.body = "Water over the embankment near Wenyi West Road. Check the ground floors of your grid and report.".into();
    req.drill = true;
    req.level = gridcast_protocol::Level::II;
    let created = hub.console("").activate(&req).await.unwrap();
    for (i, c) in phones.iter_mut().enumerate() {
        let view = loop {
            if let ServerFrame::Incident { incident, .. } = c.next().await.unwrap() {
                break incident;
            }
        };
        c.send(&ClientFrame::Receipt {
            incident: view.id.clone(),
            rev: view.rev,
            reference: None,
        })
        .await
        .unwrap();
        if i % 3 != 2 {
            let ack = ClientFrame::Ack {
                incident: view.id,
                response: if i % 7 == 0 {
                    Response::Decline
                } else {
                    Response::Accept
                },
                note: None,
                reference: Some(format!("a{i}")),
            };
            c.request(&ack).await.unwrap().0.unwrap();
        }
    }
    console
        .click(&format!("#incidents [data-id=\"{}\"]", created.id))
        .await;
    console
        .wait_for(
            "document.querySelectorAll('#detail table.recipients tr[data-status=accepted]').length > 20",
            WAIT,
            "the console's detail with the answers",
        )
        .await;
    phone
        .wait_for(
            "document.querySelector('.incident .accept')",
            WAIT,
            "the drill on the phone",
        )
        .await;
    // The console as an operator sees it with the form folded away: the viewport.
    console
        .eval("document.getElementById('issue').open = false; window.scrollTo(0, 0)")
        .await;
    // Open the county and its first street, as an operator would.
    for code in ["330106", "330106004"] {
        console
            .wait_for(
                &format!("document.querySelector('#tree details[data-code=\"{code}\"]')"),
                WAIT,
                "the tree",
            )
            .await;
        console
            .eval(&format!(
                "document.querySelector('#tree details[data-code=\"{code}\"]').open = true"
            ))
            .await;
    }
    console
        .wait_for(
            "document.querySelector('#tree [data-code=\"330106004005\"]')",
            WAIT,
            "the street's communities",
        )
        .await;
    // Counts as the operator would see them after the last phone came online.
    console
        .wait_for(
            "(document.querySelector('#tree .count[data-code=\"330106\"]') || {}).textContent === '40'",
            WAIT,
            "the county's count with every phone",
        )
        .await;
    for (suffix, lang) in [("", "zh-CN"), ("-en", "en")] {
        for p in [&console, &phone] {
            p.eval(&format!("(() => {{ const s = document.getElementById('lang'); s.value = '{lang}'; s.dispatchEvent(new Event('change', {{bubbles: true}})); }})()"))
                .await;
            p.wait_for(
                &format!("document.documentElement.lang === '{lang}'"),
                WAIT,
                "the language switched",
            )
            .await;
        }
        // One frame for the views to re-render in that language.
        let frame =
            "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))";
        console.eval(frame).await;
        phone.eval(frame).await;
        let shots = [
            (format!("console{suffix}.png"), &console, false),
            (format!("lead-360{suffix}.png"), &phone, true),
        ];
        for (name, page, full) in shots {
            let path = out.join(&name);
            page.screenshot(&path, full).await;
            let png = std::fs::read(&path).unwrap();
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name} is a PNG");
            assert!(
                png.len() > 10_000,
                "{name} has content ({} bytes)",
                png.len()
            );
        }
    }
    // The phone page fits a 360-pixel screen: nothing wider than the viewport.
    assert_eq!(
        phone
            .eval("document.documentElement.scrollWidth <= 360")
            .await,
        json!(true)
    );
    hub.stop().await;
}

/// The contract asks phones to resend an answer until it is `ok`: an Accept tapped
/// while the hub's store (here Redis) is down is answered `unavailable`, and the page
/// keeps resending it until Redis is back and it is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accept_the_hub_cannot_record_yet_is_resent_until_it_is() {
    let mut redis = support::redis::RedisServer::start("web-unavailable").await;
    let url = redis.url();
    let hub = TestHub::start("web-unavailable", Some(city()), move |c| {
        c.redis = Some(url);
        c.node_id = Some("w1".into());
    })
    .await;
    ready_is(&hub.http(), true, Duration::from_secs(20)).await;
    let created = hub
        .console("")
        .activate(&activation("Gas smell in block 7", &[G1], &[]))
        .await
        .unwrap();
    let b = Browser::start("unavailable").await;
    let phone = lead_page(&b, &hub.http(), "GL1").await;
    phone
        .wait_for(
            "(document.querySelector('.incident .title') || {}).textContent === 'Gas smell in block 7'",
            WAIT,
            "the incident on the phone",
        )
        .await;
    redis.kill().await;
    phone.click(".incident .accept").await;
    phone
        .wait_for(
            "(document.querySelector('.incident .note') || {}).textContent === 'Accept: not recorded yet, retrying…'",
            Duration::from_secs(30),
            "the page saying it retries",
        )
        .await;
    redis.restart().await;
    phone
        .wait_for(
            "(document.querySelector('.incident .note') || {}).textContent === 'Accept: recorded ✓'",
            Duration::from_secs(60),
            "the accept recorded once Redis is back",
        )
        .await;
    let detail: serde_json::Value = hub
        .console("")
        .get(&format!("/v1/incidents/{}", created.id))
        .await
        .unwrap();
    assert_eq!(detail["counts"]["accepted"], json!(1), "{detail}");
    hub.stop().await;
}

//! The console and the phone page for a real city, in a real headless Chromium against
//! a real hub: a registry of two counties, operators of the whole city and of one
//! community, Chinese and English browsers, a console whose live stream falls behind
//! or drops, and the tree that never asks for every lead of the city.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use gridcast_clients::lead::LeadClient;
use gridcast_hub::auth::TokenRole;
use gridcast_protocol::frame::{ClientFrame, ServerFrame};
use gridcast_protocol::model::Response;
use gridcast_protocol::registry::{AreaDoc, AssignmentDoc, GridDoc, RegistryDoc, StaffDoc};
use serde_json::json;
use support::chromium::{Browser, Page};
use support::*;

const WAIT: Duration = Duration::from_secs(15);

/// Nanshan (440305) and Bao'an (440306) under Shenzhen (4403), two grids each.
const N1: &str = "4403050010021001"; // 南山区 · 街道 001 · 桃源社区 002
const N2: &str = "4403050030011001";
const B1: &str = "4403060020041001";
const B2: &str = "4403060020042001"; // a rural grid
const COMMUNITY: &str = "440305001002";

fn two_counties() -> RegistryDoc {
    let grid = |code: &str, name: &str, kind: &str| GridDoc {
        code: code.into(),
        name: name.into(),
        kind: Some(kind.into()),
        geometry: None,
        supervision_phone: None,
    };
    let person = |id: &str, grid: &str, role: &str| StaffDoc {
        id: id.into(),
        name: format!("网格员 {id}"),
        phone: "13800000000".into(),
        work_contact: None,
        assignments: vec![AssignmentDoc {
            grid: grid.into(),
            role: role.into(),
        }],
    };
    let area = |code: &str, name: &str| AreaDoc {
        code: code.into(),
        name: name.into(),
    };
    RegistryDoc {
        grids: vec![
            grid(N1, "桃源一网格", "community"),
            grid(N2, "西丽一网格", "community"),
            grid(B1, "新安一网格", "community"),
            grid(B2, "新安农村网格", "rural"),
        ],
        staff: vec![
            person("N1L", N1, "grid_lead"),
            person("N1F", N1, "full_time"),
            person("N2L", N2, "grid_lead"),
            person("B1L", B1, "grid_lead"),
            person("B1I", B1, "instructor"),
            person("B2L", B2, "grid_lead"),
        ],
        task_kinds: vec![],
        areas: vec![
            area("44", "广东省"),
            area("4403", "深圳市"),
            area("440305", "南山区"),
            area("440306", "宝安区"),
            area(COMMUNITY, "桃源社区"),
        ],
    }
}

async fn console_as(b: &Browser, http: &str, token: &str, langs: Option<&str>) -> Page {
    let url = format!("{http}/console#token={token}");
    b.online_page(langs, &url, 1280, 900, false).await
}

/// Fills the activation form (a drill to `codes`), sends it, and returns the refusal
/// the form's own line shows.
async fn refused_activation(page: &Page, title: &str, codes: &str) -> serde_json::Value {
    page.fill("#f-title", title).await;
    page.fill("#f-body", "x").await;
    page.fill("#f-codes", codes).await;
    page.click("#f-drill").await;
    page.click("#f-submit").await;
    page.wait_for(
        "(() => { const e = document.getElementById('issue-result'); return e.classList.contains('error') && e.textContent; })()",
        WAIT,
        "the refusal in the form's own line",
    )
    .await
}

/// Exactly `failed` panels show an error, and the live stream is up.
async fn only_failed_panels(page: &Page, failed: usize, what: &str) {
    let shown = page
        .eval("[...document.querySelectorAll('.panel-error')].filter(e => !e.hidden).length")
        .await;
    assert_eq!(shown, json!(failed), "{what}");
    assert_eq!(
        page.eval("document.body.dataset.conn").await,
        json!("online")
    );
}

/// The codes of the tree's top level.
const ROOTS: &str =
    "[...document.querySelectorAll('#tree > [data-code]')].map(e => e.dataset.code).join(',')";

/// Every request the page made, as URLs.
const REQUESTS: &str =
    "performance.getEntriesByType('resource').map(e => e.name).filter(u => u.includes('/v1/'))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_city_of_two_counties_shows_both_and_a_community_operator_sees_only_its_community() {
    let hub = TestHub::start("city-two-counties", Some(two_counties()), |_| {}).await;
    let b = Browser::start("two-counties").await;
    let city = console_as(&b, &hub.http(), &admin_token(), None).await;
    city.wait_for(
        &format!("{ROOTS} === '440305,440306'"),
        WAIT,
        "both counties as the tree's roots",
    )
    .await;
    assert_eq!(
        city.text("#tree > [data-code='440305'] .name")
            .await
            .as_deref(),
        Some("南山区"),
        "a county named from the registry's areas"
    );
    // A phone online in Bao'an is counted on its county.
    let (mut phone, _) = LeadClient::connect(&hub.ws_url(), &lead_token("B1L"))
        .await
        .unwrap();
    phone.sync().await.unwrap();
    city.wait_for(
        "(document.querySelector('#tree .count[data-code=\"440306\"]') || {}).textContent === '1'",
        WAIT,
        "B1L online under 440306",
    )
    .await;
    // Opening a county reads its towns, and only then.
    city.eval("document.querySelector('#tree details[data-code=\"440306\"]').open = true")
        .await;
    city.wait_for(
        "document.querySelector('#tree [data-code=\"440306002\"]')",
        WAIT,
        "the county's town once it is opened",
    )
    .await;

    // A new incident is listed within a second, and its bar moves on an ack.
    let issued = Instant::now();
    let created = hub
        .console("")
        .activate(&activation("宝安区暴雨", &["440306"], &[]))
        .await
        .unwrap();
    let card = format!("#incidents [data-id=\"{}\"]", created.id);
    city.wait_for(
        &format!("document.querySelector('{card}')"),
        Duration::from_secs(1),
        "the new incident listed within 1 s",
    )
    .await;
    println!("incident listed {:?} after it was issued", issued.elapsed());
    let view = loop {
        if let ServerFrame::Incident { incident, .. } = phone.next().await.unwrap() {
            break incident;
        }
    };
    let ack = ClientFrame::Ack {
        incident: view.id,
        response: Response::Accept,
        note: None,
        reference: Some("a1".into()),
    };
    phone.request(&ack).await.unwrap().0.unwrap();
    city.wait_for(
        &format!(
            "(document.querySelector('{card} .n.accepted') || {{}}).textContent === '1 accepted'"
        ),
        WAIT,
        "the incident's bar moved on the ack",
    )
    .await;
    let width = city
        .eval(&format!(
            "document.querySelector('{card} .seg.accepted').style.width"
        ))
        .await;
    assert_eq!(width, json!("33.3333%"), "1 of the 3 recipients in Bao'an");

    // The tree never asked for every lead: leads only inside a grid, no registry.
    let urls = city.eval(REQUESTS).await;
    for u in urls.as_array().unwrap() {
        let u = u.as_str().unwrap();
        assert!(
            !u.contains("/v1/registry"),
            "the console read the registry: {u}"
        );
        if u.contains("leads=true") {
            let prefix = u
                .split("prefix=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap();
            assert!(prefix.len() >= 16, "leads asked for a whole area: {u}");
        }
    }

    // An operator of one community sees exactly that community.
    let op = token("op-taoyuan", TokenRole::Operator, COMMUNITY);
    let local = console_as(&b, &hub.http(), &op, None).await;
    local
        .wait_for(
            &format!("{ROOTS} === '{COMMUNITY}'"),
            WAIT,
            "the community as the only root",
        )
        .await;
    local
        .wait_for(
            &format!("document.querySelector('#tree [data-code=\"{N1}\"]')"),
            WAIT,
            "its grid under it",
        )
        .await;
    let outside = local
        .eval(&format!(
            "[...document.querySelectorAll('#tree [data-code]')].map(e => e.dataset.code).filter(c => !c.startsWith('{COMMUNITY}'))"
        ))
        .await;
    assert_eq!(outside, json!([]), "nothing outside the community");
    assert_eq!(
        local
            .eval("document.querySelectorAll('#incidents .incident').length")
            .await,
        json!(0),
        "Bao'an's incident is not shown in Nanshan"
    );

    // A request the hub refuses shows its error in its panel; the rest works.
    let said = refused_activation(&local, "越权测试", "440306").await;
    assert!(
        said.as_str()
            .unwrap()
            .contains("Not allowed: outside your jurisdiction"),
        "{said}"
    );
    only_failed_panels(&local, 0, "no panel failed: the refusal is the form's").await;
    assert!(
        local
            .eval("document.querySelectorAll('#tree [data-code]').length")
            .await
            .as_u64()
            > Some(0)
    );
    hub.stop().await;
}

/// The page texts that must be in the page's language: buttons, labels, headings.
const OWN_TEXTS: &str = "[...document.querySelectorAll('[data-t]')].filter(e => e.offsetParent !== null || e.tagName === 'OPTION').map(e => e.textContent.trim()).filter(t => t)";

fn has_cjk(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

/// The texts of a page's list (a JSON array of strings) that have no Chinese in them.
fn not_chinese(texts: &serde_json::Value) -> Vec<&str> {
    texts
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .filter(|t| !has_cjk(t))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chinese_browser_gets_both_pages_in_chinese_and_the_choice_survives_a_reload() {
    let hub = TestHub::start("city-zh", Some(two_counties()), |_| {}).await;
    let mut req = activation("南山区内涝", &["440305"], &[]);
    req.drill = true;
    let created = hub.console("").activate(&req).await.unwrap();
    let b = Browser::start("zh").await;
    let zh = console_as(&b, &hub.http(), &admin_token(), Some("zh-CN,zh;q=0.9")).await;
    assert_eq!(
        zh.eval("document.documentElement.lang").await,
        json!("zh-CN")
    );
    let card = format!("#incidents [data-id=\"{}\"]", created.id);
    zh.wait_for(
        &format!("document.querySelector('{card}')"),
        WAIT,
        "the incident",
    )
    .await;
    assert_eq!(
        zh.text(&format!("{card} .badge.drill")).await.as_deref(),
        Some("演练")
    );
    assert_eq!(
        zh.text(&format!("{card} .badge.level-II")).await.as_deref(),
        Some("重大（Ⅱ级）")
    );
    assert!(
        zh.eval(&format!(
            "document.querySelector('{card} .badges').textContent"
        ))
        .await
        .as_str()
        .unwrap()
        .contains("自然灾害")
    );
    assert_eq!(
        zh.text(&format!("{card} .title")).await.as_deref(),
        Some("南山区内涝"),
        "the hub's text as it is"
    );
    let texts = zh.eval(OWN_TEXTS).await;
    let english = not_chinese(&texts);
    assert!(english.is_empty(), "not in Chinese: {english:?}");
    assert!(texts.as_array().unwrap().len() > 30, "{texts}");
    for (sel, want) in [
        ("#signout", "退出登录"),
        ("#f-submit", "发布通知"),
        ("option[value=social_safety]", "社会安全事件"),
        ("option[value=I]", "Ⅰ级 — 特别重大"),
    ] {
        assert_eq!(zh.text(sel).await.as_deref(), Some(want), "{sel}");
    }
    assert!(
        zh.text("#conn").await.unwrap().starts_with("实时"),
        "the connection badge in Chinese"
    );
    // The selected incident: everything the page builds is in Chinese too.
    zh.click(&card).await;
    zh.wait_for(
        "document.querySelector('#d-recipients tr[data-lead]')",
        WAIT,
        "detail",
    )
    .await;
    let built = zh
        .eval("[...document.querySelectorAll('#detail th, #detail h3, #detail button, #detail .legend .n, #detail .pager .page, #d-timeline strong, #detail .meta, #tree .name')].filter(e => e.offsetParent !== null).map(e => e.textContent.trim()).filter(t => t)")
        .await;
    let english = not_chinese(&built);
    assert!(
        english.is_empty(),
        "built by the page, not in Chinese: {english:?}"
    );
    assert!(built.as_array().unwrap().len() > 20, "{built}");
    // A refusal as a Chinese sentence.
    let said = refused_activation(&zh, "x", "4403059").await;
    assert!(
        said.as_str().unwrap().starts_with("未发布：输入有误。"),
        "{said}"
    );
    // The first paint is already Chinese: the hub rendered it from Accept-Language.
    let first = reqwest::Client::new()
        .get(format!("{}/lead", hub.http()))
        .header("accept-language", "zh-CN,zh;q=0.9,en;q=0.8")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(first.contains("<html lang=\"zh-CN\">") && first.contains(">上报</button>"));

    // The phone page, in Chinese, with its answer buttons.
    let url = format!("{}/lead#token={}", hub.http(), lead_token("N1L"));
    let phone = b.online_page(Some("zh-CN"), &url, 360, 740, true).await;
    phone
        .wait_for(
            "document.querySelector('.incident .accept')",
            WAIT,
            "the drill on the phone",
        )
        .await;
    assert_eq!(
        phone.eval("document.documentElement.lang").await,
        json!("zh-CN")
    );
    assert_eq!(
        phone.text(".incident .accept").await.as_deref(),
        Some("响应（到场）")
    );
    assert_eq!(
        phone.text(".incident .badge.drill").await.as_deref(),
        Some("演练")
    );
    assert!(
        phone
            .text(".incident .left")
            .await
            .unwrap()
            .starts_with("剩余")
    );
    assert!(
        phone
            .text(".incident .meta")
            .await
            .unwrap()
            .contains("网格长")
    );
    let texts = phone.eval(OWN_TEXTS).await;
    let english = not_chinese(&texts);
    assert!(
        english.is_empty(),
        "not in Chinese on the phone: {english:?}"
    );

    // An English browser gets English.
    let en = console_as(&b, &hub.http(), &admin_token(), Some("en-US,en;q=0.9")).await;
    assert_eq!(en.eval("document.documentElement.lang").await, json!("en"));
    assert_eq!(en.text("#signout").await.as_deref(), Some("Sign out"));
    en.wait_for(
        &format!("document.querySelector('{card} .badge.drill')"),
        WAIT,
        "drill",
    )
    .await;
    assert_eq!(
        en.text(&format!("{card} .badge.drill")).await.as_deref(),
        Some("DRILL")
    );

    // Switched on the page, remembered across a reload, the hub's first paint too.
    zh.eval("(() => { const s = document.getElementById('lang'); s.value = 'en'; s.dispatchEvent(new Event('change', {bubbles: true})); })()")
        .await;
    zh.wait_for(
        "document.documentElement.lang === 'en'",
        WAIT,
        "switched to English",
    )
    .await;
    zh.wait_for(
        &format!("(document.querySelector('{card} .badge.drill') || {{}}).textContent === 'DRILL'"),
        WAIT,
        "the incident re-rendered in English",
    )
    .await;
    assert_eq!(zh.text("#signout").await.as_deref(), Some("Sign out"));
    zh.reload().await;
    zh.wait_for(
        "document.body.dataset.conn === 'online'",
        WAIT,
        "back online",
    )
    .await;
    assert_eq!(zh.eval("document.documentElement.lang").await, json!("en"));
    assert_eq!(
        zh.eval("document.cookie.includes('gridcast_lang=en')")
            .await,
        json!(true)
    );
    assert_eq!(
        zh.text("#f-submit").await.as_deref(),
        Some("Issue activation")
    );
    hub.stop().await;
}

/// An escalation (a silent lead past a one-second window) and a report, both recorded.
async fn escalation_and_report(hub: &TestHub, title: &str) -> (String, String) {
    let mut req = activation(title, &[N2], &[]);
    req.ack_within_s = Some(1);
    let created = hub.console("").activate(&req).await.unwrap();
    let ops = hub.console("");
    let path = format!("/v1/incidents/{}/timeline", created.id);
    eventually(Duration::from_secs(20), "the escalation recorded", || {
        let ops = &ops;
        let path = &path;
        async move {
            let tl: serde_json::Value = ops.get(path).await.unwrap();
            tl["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["kind"] == "escalated")
        }
    })
    .await;
    let (mut lead, _) = LeadClient::connect(&hub.ws_url(), &lead_token("B1L"))
        .await
        .unwrap();
    lead.sync().await.unwrap();
    let report = ClientFrame::Report {
        category: gridcast_protocol::Category::Accident,
        title: format!("{title}: 树木倒伏"),
        detail: "堵塞车道".into(),
        grid: gridcast_protocol::GridCode::parse(B1).unwrap(),
        location: None,
        reference: Some("r1".into()),
    };
    lead.request(&report).await.unwrap().0.unwrap();
    let reports: serde_json::Value = ops.get("/v1/reports?limit=1").await.unwrap();
    let report_id = reports["reports"][0]["id"].as_str().unwrap().to_owned();
    (format!("{}/1", created.id), report_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_that_falls_behind_or_reconnects_shows_every_escalation_and_report() {
    let hub = TestHub::start("city-lagged", Some(two_counties()), |c| {
        c.console_buffer = 8;
    })
    .await;
    let proxy = support::stall::StallingProxy::start(hub.addr).await;
    let b = Browser::start("lagged").await;
    let console = console_as(&b, &proxy.http(), &admin_token(), Some("en")).await;

    // Stalled: the console reads nothing while escalations, a report, and then far more
    // events than the hub keeps for it happen.
    proxy.stall();
    let long = "水".repeat(15_000);
    let ops = hub.console("");
    let flood = |from: usize| {
        let ops = &ops;
        let long = &long;
        async move {
            for i in from..from + 150 {
                let mut req = activation(&format!("filler {i}"), &[B2], &[]);
                req.body = long.clone();
                req.drill = true;
                ops.activate(&req).await.unwrap();
            }
        }
    };
    // First enough to fill every buffer between the hub and the page, so that what
    // follows can only wait in the hub's 8 slots for this stream, then is pushed out.
    flood(0).await;
    let (escalation, report) = escalation_and_report(&hub, "Stalled").await;
    flood(150).await;
    assert_eq!(
        console
            .eval(&format!(
                "!!document.querySelector('#escalations [data-id=\"{escalation}\"]')"
            ))
            .await,
        json!(false),
        "not shown while stalled"
    );
    proxy.release();
    console
        .wait_for(
            "!document.getElementById('notice').hidden && document.getElementById('notice').textContent.includes('fell behind')",
            Duration::from_secs(30),
            "the console says it fell behind and read again",
        )
        .await;
    assert!(
        metric(&hub.http(), "gridcast_console_lagged_total").await > 0,
        "the hub told this stream `lagged`"
    );
    for (what, sel) in [
        (
            "the escalation",
            format!("#escalations [data-id=\"{escalation}\"]"),
        ),
        ("the report", format!("#reports [data-id=\"{report}\"]")),
    ] {
        console
            .wait_for(&format!("document.querySelector('{sel}')"), WAIT, what)
            .await;
    }

    // The escalation stays until acknowledged on the console, also across a reload.
    console
        .click(&format!("#escalations [data-id=\"{escalation}\"] .ack"))
        .await;
    console
        .wait_for(
            &format!("!document.querySelector('#escalations [data-id=\"{escalation}\"]')"),
            WAIT,
            "acknowledged",
        )
        .await;

    // Dropped: the stream is cut and cannot come back while more happens.
    proxy.refuse_streams(true);
    console
        .wait_for(
            "document.body.dataset.conn === 'reconnecting'",
            WAIT,
            "the badge says it is reconnecting",
        )
        .await;
    let (escalation2, report2) = escalation_and_report(&hub, "Dropped").await;
    proxy.refuse_streams(false);
    console
        .wait_for(
            "document.body.dataset.conn === 'online'",
            Duration::from_secs(40),
            "back online",
        )
        .await;
    for (what, sel) in [
        (
            "the escalation missed while away",
            format!("#escalations [data-id=\"{escalation2}\"]"),
        ),
        (
            "the report missed while away",
            format!("#reports [data-id=\"{report2}\"]"),
        ),
    ] {
        console
            .wait_for(&format!("document.querySelector('{sel}')"), WAIT, what)
            .await;
    }
    assert!(console.text("#notice").await.unwrap().contains("back"));
    console.reload().await;
    console
        .wait_for(
            &format!("document.querySelector('#escalations [data-id=\"{escalation2}\"]')"),
            WAIT,
            "unacknowledged escalations are still there after a reload",
        )
        .await;
    assert_eq!(
        console
            .eval(&format!(
                "!!document.querySelector('#escalations [data-id=\"{escalation}\"]')"
            ))
            .await,
        json!(false),
        "the acknowledged one stays acknowledged"
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_says_its_limits_and_pages_recipients_and_timelines() {
    let hub = TestHub::start("city-limits", Some(two_counties()), |_| {}).await;
    let limits: serde_json::Value = reqwest::get(format!("{}/v1/limits", hub.http()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(limits["body"], json!(16_000));
    assert_eq!(limits["note"], json!(1_000));
    let b = Browser::start("limits").await;
    let console = console_as(&b, &hub.http(), &admin_token(), None).await;
    console
        .wait_for(
            "document.getElementById('f-body').maxLength === 16000",
            WAIT,
            "the body field takes what the hub takes",
        )
        .await;
    assert_eq!(
        console
            .eval("document.getElementById('c-reason').maxLength")
            .await,
        json!(1000)
    );
    assert_eq!(
        console
            .eval("[document.getElementById('f-window').max, document.getElementById('t-due').max]")
            .await,
        json!(["86400", "604800"])
    );

    let ops = hub.console("");
    let created = ops
        .activate(&activation("paged", &["4403"], &[]))
        .await
        .unwrap();
    let page: serde_json::Value = ops
        .get(&format!(
            "/v1/incidents/{}/recipients?limit=4&offset=0",
            created.id
        ))
        .await
        .unwrap();
    assert_eq!(page["total"], json!(6));
    assert_eq!(page["recipients"].as_array().unwrap().len(), 4);
    assert_eq!(page["next_offset"], json!(4));
    let last: serde_json::Value = ops
        .get(&format!(
            "/v1/incidents/{}/recipients?limit=4&offset=4",
            created.id
        ))
        .await
        .unwrap();
    assert_eq!(last["recipients"].as_array().unwrap().len(), 2);
    assert!(last.get("next_offset").is_none());
    for q in ["limit=0", "limit=abc", "offset=-1", "limit=5001"] {
        let bad = reqwest::Client::new()
            .get(format!(
                "{}/v1/incidents/{}/recipients?{q}",
                hub.http(),
                created.id
            ))
            .bearer_auth(admin_token())
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400, "{q}");
        let body: serde_json::Value = bad.json().await.unwrap();
        assert_eq!(body["error"]["code"], json!("bad_request"), "{q}: {body}");
    }
    ops.activate(&activation("second", &["440306"], &[]))
        .await
        .unwrap();
    let newest: serde_json::Value = ops.get("/v1/incidents?state=active&limit=1").await.unwrap();
    assert_eq!(newest["incidents"].as_array().unwrap().len(), 1);
    assert_eq!(newest["incidents"][0]["incident"]["title"], json!("second"));
    let tl: serde_json::Value = ops
        .get(&format!("/v1/incidents/{}/timeline?limit=1", created.id))
        .await
        .unwrap();
    assert_eq!(tl["total"], json!(1));
    assert_eq!(tl["events"][0]["kind"], json!("issued"));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panel_whose_request_fails_says_so_and_retries_while_the_rest_works() {
    let hub = TestHub::start("city-flaky", Some(two_counties()), |_| {}).await;
    hub.console("")
        .activate(&activation("南山区内涝", &["440305"], &[]))
        .await
        .unwrap();
    let b = Browser::start("flaky").await;
    let console = console_as(&b, &hub.http(), &admin_token(), Some("en")).await;
    // The next two reads of the reports fail on the way (503 answered by the browser).
    console.fail_requests("/v1/reports", 2).await;
    console.reload().await;
    let said = console
        .wait_for(
            "(() => { const e = document.querySelector('#reports-panel > .panel-error'); return e && !e.hidden && e.textContent; })()",
            WAIT,
            "the reports panel's own error",
        )
        .await;
    let said = said.as_str().unwrap();
    assert!(
        said.starts_with("Could not load: The hub cannot record this right now"),
        "{said}"
    );
    assert!(said.contains("Retry now"), "{said}");
    // The rest of the page works meanwhile.
    console
        .wait_for(
            "document.querySelector('#incidents .incident') && document.querySelector('#tree > [data-code]')",
            WAIT,
            "incidents and tree",
        )
        .await;
    only_failed_panels(&console, 1, "only the reports panel failed").await;
    // Retried by itself: the error goes away and the panel shows its content.
    console
        .wait_for(
            "document.querySelector('#reports-panel > .panel-error').hidden && document.querySelector('#reports').textContent === 'None.'",
            WAIT,
            "the reports panel recovered",
        )
        .await;
    hub.stop().await;
}

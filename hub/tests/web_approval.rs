//! The two-person rule on the console, in a real headless Chromium: an operator's
//! level I activation from the form is held (the form says so, no phone rings), the
//! asker sees it waiting, a supervisor's console shows it with its text and recipient
//! count, and the supervisor's approval sends it to the phone.

// Test harnesses spawn and wait freely; the hub's conventions (hub/clippy.toml) are
// for the hub itself.
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use gridcast_hub::auth::TokenRole;
use serde_json::json;
use support::chromium::Browser;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_activation_is_approved_on_a_second_console_and_reaches_the_phone() {
    let hub = TestHub::start("web-approval", Some(two_grid_city()), |c| {
        c.approval_levels = vec![Some(gridcast_protocol::Level::I)];
    })
    .await;
    let b = Browser::start("approval").await;
    let console = |sub: &str, role: TokenRole| {
        format!("{}/console#token={}", hub.http(), token(sub, role, ""))
    };
    let asker = b
        .online_page(
            None,
            &console("op-1", TokenRole::Operator),
            1280,
            900,
            false,
        )
        .await;
    let second = b
        .online_page(
            None,
            &console("sup-1", TokenRole::Supervisor),
            1280,
            900,
            false,
        )
        .await;
    let phone = b
        .online_page(
            None,
            &format!("{}/lead#token={}", hub.http(), lead_token("GL1")),
            360,
            740,
            true,
        )
        .await;

    asker.eval("window.confirm = () => true; true").await;
    asker.fill("#f-title", "Dam breach upstream").await;
    asker.fill("#f-body", "Move to high ground now.").await;
    asker.fill("#f-codes", G1).await;
    asker
        .eval("(() => { const s = document.getElementById('f-level'); s.value = 'I'; return true; })()")
        .await;
    asker.click("#f-submit").await;
    asker
        .wait_for(
            "document.getElementById('issue-result').textContent.includes('APR-000001')",
            WAIT,
            "held",
        )
        .await;
    // The asker sees it waiting, with no way to approve it.
    asker
        .wait_for(
            "(document.querySelector('#approvals .approval .waiting') || {}).textContent",
            WAIT,
            "waiting",
        )
        .await;
    assert_eq!(
        asker
            .eval("document.querySelectorAll('#approvals .approve').length")
            .await,
        json!(0)
    );

    // The supervisor's console shows the full text and the recipient count.
    second
        .wait_for(
            "document.querySelector('#approvals .approval[data-id=\"APR-000001\"] .approve')",
            WAIT,
            "the request",
        )
        .await;
    assert_eq!(
        second.text("#approvals .approval .title").await.as_deref(),
        Some("Dam breach upstream")
    );
    assert_eq!(
        second.text("#approvals .approval .body").await.as_deref(),
        Some("Move to high ground now.")
    );
    assert!(
        second
            .text("#approvals .approval .meta")
            .await
            .unwrap()
            .contains("op-1")
    );
    // Nothing on the phone yet.
    assert_eq!(
        phone
            .eval("document.querySelectorAll('#incidents .incident').length")
            .await,
        json!(0)
    );

    second.click("#approvals .approve").await;
    phone
        .wait_for(
            "(document.querySelector('.incident .title') || {}).textContent === 'Dam breach upstream'",
            WAIT,
            "the approved activation on the phone",
        )
        .await;
    // Both consoles drop it from the waiting list.
    for page in [&asker, &second] {
        page.wait_for(
            "document.querySelectorAll('#approvals .approval').length === 0",
            WAIT,
            "no request left",
        )
        .await;
    }
    hub.stop().await;
}

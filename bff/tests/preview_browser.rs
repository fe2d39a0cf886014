//! The preview page in a real browser: headless Chromium driven through
//! chromedriver (WebDriver), against `make run` (the samples with their
//! sample backends). The browser may reach 127.0.0.1 only: every other
//! host resolves to nothing and goes to a dead proxy. One session, a few
//! seconds: the menu differs by role, a table shows rows and pages, a form
//! refuses an invalid value with the definition's message, a command
//! changes the list, a workflow instance advances.
//!
//! Screenshots go to the test's temporary directory; with
//! THESA_SAVE_SCREENSHOTS=1 also to docs/images/ (what the README shows).

#[path = "support/make_run.rs"]
mod make_run;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// chromedriver, stopped on drop.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find_program(names: &[&str]) -> String {
    for name in names {
        if Command::new(name)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return name.to_string();
        }
    }
    panic!(
        "none of {names:?} is on PATH: run `bash scripts/test-deps.sh` (installs Debian's chromium and chromium-driver)"
    );
}

async fn browser() -> (Driver, Client, tempfile::TempDir) {
    let driver = find_program(&["chromedriver"]);
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
    let port = make_run::free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver(child);
    let profile = tempfile::tempdir().expect("profile dir");
    let binary = which(&chromium);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": binary,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync", "--window-size=1280,860",
                format!("--user-data-dir={}", profile.path().display()),
                "--proxy-server=http://127.0.0.1:9",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            ]
        }),
    );
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    loop {
        match ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return (driver, client, profile),
            Err(err) => {
                assert!(
                    Instant::now() < deadline,
                    "chromedriver did not start a session: {err}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn which(program: &str) -> String {
    let output = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .expect("sh");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Polls `check` (a JavaScript expression) until it is true, for at most 10 s.
async fn until(client: &Client, what: &str, check: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = client
            .execute(&format!("return !!({check});"), vec![])
            .await
            .unwrap_or(Value::Bool(false));
        if value == Value::Bool(true) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting until {what} ({check})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn text(client: &Client, script: &str) -> String {
    match client.execute(&format!("return {script};"), vec![]).await {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(err) => panic!("{script}: {err}"),
    }
}

async fn open(client: &Client, url: &str) {
    // A new hash in the same document renders after `goto` returns: mark
    // the view stale first, so the wait below sees the new rendering.
    let _ = client
        .execute(
            "var v = document.querySelector('#view'); if (v) v.dataset.ready = 'false';",
            vec![],
        )
        .await;
    client.goto(url).await.expect("navigate");
    until(
        client,
        "the view rendered",
        "document.querySelector('#view').dataset.ready === 'true'",
    )
    .await;
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(dir.join(name), &png).expect("write screenshot");
    if std::env::var("THESA_SAVE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let docs = make_run::root().join("docs/images");
        std::fs::create_dir_all(&docs).expect("docs/images");
        std::fs::write(docs.join(name), &png).expect("write docs screenshot");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_renders_the_samples_with_live_data() {
    let run = make_run::start().await;
    let (_driver, client, _profile) = browser().await;
    let base = format!("{}/preview/", run.url);

    // The menu differs by role.
    open(&client, &format!("{base}?role=inventory_manager#/")).await;
    until(
        &client,
        "a menu",
        "document.querySelectorAll('#menu a').length > 1",
    )
    .await;
    let inventory_menu = text(&client, "document.querySelector('#menu').innerText").await;
    open(&client, &format!("{base}?role=viewer#/")).await;
    until(
        &client,
        "a menu",
        "document.querySelectorAll('#menu a').length > 1",
    )
    .await;
    let viewer_menu = text(&client, "document.querySelector('#menu').innerText").await;
    assert!(inventory_menu.contains("Products"), "{inventory_menu}");
    assert!(!inventory_menu.contains("All orders"), "{inventory_menu}");
    assert!(
        viewer_menu.contains("All orders") && viewer_menu.contains("Customers"),
        "{viewer_menu}"
    );

    // A table shows rows from the sample backend, and pages.
    open(&client, &format!("{base}?role=admin#/p/orders.list")).await;
    until(
        &client,
        "rows",
        "document.querySelectorAll('tbody tr').length > 0",
    )
    .await;
    client
        .find(Locator::Css("select[name=priority]"))
        .await
        .expect("priority filter")
        .select_by_value("")
        .await
        .expect("any priority");
    until(
        &client,
        "a full page",
        "document.querySelectorAll('tbody tr').length === 25",
    )
    .await;
    let page_info = text(&client, "document.querySelector('.page-info').innerText").await;
    assert!(page_info.starts_with("Page 1 of 3"), "{page_info}");
    let first_row = text(&client, "document.querySelector('tbody tr').dataset.id").await;
    screenshot(&client, "preview-table.png").await;
    client
        .find(Locator::XPath("//button[contains(., 'Next')]"))
        .await
        .expect("next")
        .click()
        .await
        .expect("click next");
    until(
        &client,
        "page 2",
        "document.querySelector('.page-info').innerText.startsWith('Page 2 of 3')",
    )
    .await;
    let second_row = text(&client, "document.querySelector('tbody tr').dataset.id").await;
    assert_ne!(first_row, second_row);

    // A command changes the list: cancel a pending order, confirm the dialog.
    let target = text(
        &client,
        "document.querySelector('tbody tr button[data-action=cancel]').closest('tr').dataset.id",
    )
    .await;
    client
        .find(Locator::Css(&format!(
            "tr[data-id='{target}'] button[data-action=cancel]"
        )))
        .await
        .expect("cancel button")
        .click()
        .await
        .expect("click cancel");
    until(
        &client,
        "the confirmation",
        "document.querySelector('#confirm').open",
    )
    .await;
    let dialog = text(&client, "document.querySelector('#confirm').innerText").await;
    assert!(dialog.contains("Cancel order?"), "{dialog}");
    client
        .find(Locator::Css("#confirm-ok"))
        .await
        .expect("ok")
        .click()
        .await
        .expect("confirm");
    until(
        &client,
        "the row shows cancelled",
        &format!("(document.querySelector(\"tr[data-id='{target}'] td[data-field=status]\") || {{}}).innerText === 'cancelled'"),
    )
    .await;

    // A form refuses an invalid value with the definition's message.
    open(
        &client,
        &format!("{base}?role=admin#/f/orders.edit_form?id={first_row}"),
    )
    .await;
    let postal = client
        .find(Locator::Css("input[name=postal_code]"))
        .await
        .expect("postal code");
    postal.clear().await.expect("clear");
    postal.send_keys("not a code!").await.expect("type");
    client
        .find(Locator::Css("#submit"))
        .await
        .expect("submit")
        .click()
        .await
        .expect("click submit");
    until(
        &client,
        "the field error",
        "document.querySelector('[data-error=postal_code]').innerText.length > 0",
    )
    .await;
    let error = text(
        &client,
        "document.querySelector('[data-error=postal_code]').innerText",
    )
    .await;
    assert_eq!(error, "Not a postal code.");
    screenshot(&client, "preview-form.png").await;

    // A workflow instance advances: start a return from a delivered order.
    let delivered = run
        .get("/ui/pages/orders.list/data?status=delivered&priority=")
        .await;
    let order = delivered["items"][0]["id"]
        .as_str()
        .expect("a delivered order")
        .to_string();
    open(
        &client,
        &format!("{base}?role=admin#/p/orders.detail?id={order}"),
    )
    .await;
    client
        .find(Locator::XPath("//button[contains(., 'Start a return')]"))
        .await
        .expect("start a return")
        .click()
        .await
        .expect("click start");
    until(
        &client,
        "the instance",
        "location.hash.startsWith('#/wi/') && document.querySelector('#current-step')",
    )
    .await;
    assert_eq!(
        text(&client, "document.querySelector('#current-step').innerText").await,
        "request"
    );
    client
        .find(Locator::Css("select[name=reason]"))
        .await
        .expect("reason")
        .select_by_value("damaged")
        .await
        .expect("choose reason");
    client
        .find(Locator::Css("button[data-event=submitted]"))
        .await
        .expect("submitted")
        .click()
        .await
        .expect("click submitted");
    until(
        &client,
        "the review step",
        "(document.querySelector('#current-step') || {}).innerText === 'review'",
    )
    .await;
    until(
        &client,
        "the graph marks it",
        "document.querySelector('g.step.current[data-step=review]')",
    )
    .await;
    screenshot(&client, "preview-workflow.png").await;

    client.close().await.expect("close the session");
}

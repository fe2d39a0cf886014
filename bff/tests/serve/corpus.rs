//! The BFF on the definitions and specs of a deployment of the original
//! Thesa (`../shared/thesa-corpus`, read where it lies), with service IDs
//! from the spec file names, against a mock backend generated from those
//! specs (`support/spec_mock.rs`): navigation, every page and form, the
//! data of every table page, detail page, section and inline lookup, and
//! what the backends receive.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{self, Bff, client, config, get_json, jwks};
use crate::spec_mock::{self, SpecMock};

/// `../shared/thesa-corpus` beside the repository; a clear failure when
/// it is missing (these tests must not pass silently without it).
fn corpus() -> PathBuf {
    let dir = harness::repo().join("../shared/thesa-corpus");
    assert!(
        dir.join("definitions").is_dir() && dir.join("specs").is_dir(),
        "the Thesa corpus is missing: these tests read {} (definitions/ and specs/ of a \
         deployment of the original Thesa, kept beside the repository as \
         ../shared/thesa-corpus); put it there to run them",
        dir.display()
    );
    dir
}

/// The YAML files of a directory, parsed, by file stem.
fn documents(dir: &Path) -> BTreeMap<String, Value> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let stem = p.file_stem().unwrap().to_string_lossy().to_string();
            (stem, thesa_core::node::parse(&text).unwrap().to_json())
        })
        .collect()
}

/// A BFF serving the corpus (and `extra_definitions`, when given) with every
/// service at the mock; `admin` may do everything, `tenant_viewer` only see
/// tenants. The policy file lives in the returned directory.
struct Corpus {
    bff: Bff,
    mock: SpecMock,
    specs: BTreeMap<String, Value>,
    definitions: BTreeMap<String, Value>,
    _dir: tempfile::TempDir,
    _jwks: tokio::sync::oneshot::Sender<()>,
}

async fn serve_corpus(extra_definitions: Option<&str>) -> Corpus {
    let corpus = corpus();
    let specs = documents(&corpus.join("specs"));
    let definitions = documents(&corpus.join("definitions"));
    let mock = spec_mock::start(specs.clone()).await;
    let (jwks, stop) = jwks().await;
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies.yaml");
    std::fs::write(
        &policies,
        "roles:\n  admin: ['*']\n  tenant_viewer: ['tenant:view']\n",
    )
    .unwrap();
    let mut directories = vec![format!("\"{}\"", corpus.join("definitions").display())];
    if let Some(text) = extra_definitions {
        let extra = dir.path().join("extra");
        std::fs::create_dir(&extra).unwrap();
        std::fs::write(extra.join("extras.yaml"), text).unwrap();
        directories.push(format!("\"{}\"", extra.display()));
    }
    let mut services = String::new();
    for service in specs.keys() {
        services.push_str(&format!(
            "  {service}:\n    base_url: \"{}/{service}\"\n",
            mock.url
        ));
        if service == "settings-svc" {
            // Renamed and left out, per service.
            services.push_str("    context_headers: {tenant: X-Org-Id, subject: \"\"}\n");
        }
    }
    let extra = format!(
        "specs:\n  directory: \"{}\"\ndefinitions:\n  directories: [{}]\n\
         capability:\n  evaluator: static\n  static_policy_file: \"{}\"\nservices:\n{services}",
        corpus.join("specs").display(),
        directories.join(", "),
        policies.display(),
    );
    let bff = Bff::start(&config(&jwks, &extra), &[]);
    Corpus {
        bff,
        mock,
        specs,
        definitions,
        _dir: dir,
        _jwks: stop,
    }
}

impl Corpus {
    async fn get(&self, path: &str, roles: &[&str]) -> (StatusCode, Value) {
        get_json(&self.bff.url(path), &harness::token(roles)).await
    }

    /// Every element of `list` (`pages`, `forms`) of every definition.
    fn elements(&self, list: &str) -> Vec<Value> {
        self.definitions
            .values()
            .flat_map(|d| d[list].as_array().cloned().unwrap_or_default())
            .collect()
    }

    fn sample(&self, service: &str, operation_id: &str) -> Value {
        spec_mock::sample_of(&self.specs[service], operation_id)
    }
}

/// `record` reduced to `fields`, as the BFF projects (a missing field is
/// left out).
fn project(record: &Value, fields: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for field in fields {
        if let Some(value) = record.get(*field) {
            out.insert(field.to_string(), value.clone());
        }
    }
    Value::Object(out)
}

/// The query string giving each `{param}` of `route` a value.
fn route_query(route: &str) -> String {
    route
        .split('{')
        .skip(1)
        .filter_map(|part| part.split_once('}').map(|(name, _)| name))
        .map(|name| format!("{name}={name}-x"))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_serves_navigation_every_page_and_every_form() {
    let corpus = serve_corpus(None).await;
    // Measured, not asserted: figures belong in BENCHMARKS.md, where the
    // release build starts on the corpus in 16 ms.
    eprintln!(
        "debug BFF on the corpus: startup_ms {}",
        corpus.bff.startup_ms
    );
    let (status, navigation) = corpus.get("/ui/navigation", &["admin"]).await;
    assert_eq!(status, StatusCode::OK, "{navigation}");
    let domains: Vec<&str> = navigation["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["domain"].as_str().unwrap())
        .collect();
    assert_eq!(
        domains,
        [
            "access-control",
            "foundry",
            "chat",
            "files",
            "settings",
            "redirect"
        ],
        "by navigation order"
    );
    let item = |domain: &str| {
        navigation["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["domain"] == domain)
            .unwrap()
            .clone()
    };
    // A menu item whose page_id names a form opens it.
    assert_eq!(
        item("chat")["children"][1],
        json!({"label": "Create Room", "icon": "add_comment", "route": "/chat/rooms/new",
               "page_id": "chat.create_room_form", "form_id": "chat.create_room_form", "order": 2})
    );
    assert_eq!(item("settings")["group"], "bottom");

    // Every page and every form.
    let pages = corpus.elements("pages");
    let forms = corpus.elements("forms");
    assert_eq!((pages.len(), forms.len()), (17, 15));
    for page in &pages {
        let id = page["id"].as_str().unwrap();
        let (status, view) = corpus.get(&format!("/ui/pages/{id}"), &["admin"]).await;
        assert_eq!(status, StatusCode::OK, "page {id}: {view}");
        assert_eq!(view["id"], id);
    }
    for form in &forms {
        let id = form["id"].as_str().unwrap();
        let (status, view) = corpus.get(&format!("/ui/forms/{id}"), &["admin"]).await;
        assert_eq!(status, StatusCode::OK, "form {id}: {view}");
        assert_eq!(
            view["submit_url"],
            format!("/ui/commands/{}", form["submit_command"].as_str().unwrap())
        );
    }

    // The features in the views.
    let (_, links) = corpus.get("/ui/pages/redirect.links", &["admin"]).await;
    assert_eq!(
        links["table"]["row_actions"][0]["navigate_to"], "/redirect/links/{id}/stats",
        "route of a navigate action"
    );
    let (_, create) = corpus
        .get("/ui/forms/redirect.create_link_form", &["admin"])
        .await;
    assert_eq!(
        create["sections"][0]["fields"][0]["help_text"],
        "Short code for the redirect URL (e.g., promo2026)",
        "hint"
    );
    let (_, partitions) = corpus.get("/ui/pages/partitions.list", &["admin"]).await;
    assert_eq!(
        partitions["table"]["filters"][0],
        json!({"field": "tenant_id", "label": "Tenant", "type": "reference",
               "options": {"lookup_id": "page:partitions.list:tenant_id"}}),
        "a filter's inline lookup"
    );
    let (_, grant) = corpus.get("/ui/forms/access.grant_form", &["admin"]).await;
    assert_eq!(
        grant["sections"][0]["fields"][1]["lookup"],
        json!({"lookup_id": "form:access.grant_form:partition_id"}),
        "a field's inline lookup"
    );
    let (_, stats) = corpus
        .get("/ui/pages/redirect.link_stats", &["admin"])
        .await;
    assert_eq!(stats["data_url"], "/ui/pages/redirect.link_stats/data");
    assert_eq!(
        stats["sections"][2]["table"]["data_url"],
        "/ui/pages/redirect.link_stats/data?section=clicks"
    );
    assert_eq!(stats["sections"][2]["table"]["page_size"], 50);
    for document in [&links, &create, &partitions, &grant, &stats] {
        let text = document.to_string();
        for word in [
            "operation_id",
            "service_id",
            "request_mapping",
            "tenancy-svc",
            "getLink",
        ] {
            assert!(!text.contains(word), "{word} leaked: {text}");
        }
    }

    // The probe written for the original.
    let healthz = client()
        .get(corpus.bff.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), StatusCode::OK);
    let health: Value = healthz.json().await.unwrap();
    assert_eq!(health["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corpus_serves_data_from_a_mock_generated_from_its_specs() {
    let corpus = serve_corpus(None).await;

    // Every table page: a page of rows.
    let mut tables = 0;
    for page in corpus.elements("pages") {
        let (id, route) = (
            page["id"].as_str().unwrap(),
            page["route"].as_str().unwrap(),
        );
        if page["table"].is_null() {
            continue;
        }
        let url = format!("/ui/pages/{id}/data?{}", route_query(route));
        let (status, data) = corpus.get(&url, &["admin"]).await;
        assert_eq!(status, StatusCode::OK, "{id}: {data}");
        assert_eq!(
            data["items"].as_array().map(Vec::len),
            Some(2),
            "{id}: {data}"
        );
        // Some column has its value (the specs do not have every field the
        // definitions name: `access.list` shows `profile_id`, which its
        // operation's records lack).
        let filled = page["table"]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| !data["items"][0][c["field"].as_str().unwrap()].is_null())
            .count();
        assert!(filled > 0, "{id}: {data}");
        tables += 1;
    }
    assert_eq!(tables, 12);

    // One table field by field: only the fields the page names, as the
    // backend's schema shapes them.
    let (_, tenants) = corpus.get("/ui/pages/tenants.list/data", &["admin"]).await;
    let sample = corpus.sample("tenancy-svc", "listTenants");
    assert_eq!(
        tenants,
        json!({
            "items": [
                project(&sample["data"][0], &["id", "name", "description", "state"]),
                project(&sample["data"][1], &["id", "name", "description", "state"]),
            ],
            "page": 1,
            "page_size": 25,
        })
    );
    assert_eq!(tenants["items"][1]["name"], "name-1");
    let list = corpus.mock.requests("tenancy-svc", "/ListTenant");
    assert_eq!(list[0].query, "offset=0&limit=25&sort=name&sort_dir=asc");
    assert_eq!(
        list[0].body,
        json!({}),
        "a ConnectRPC operation gets a JSON body"
    );

    // Every detail page with a data source: its record.
    for (id, operation, path) in [
        ("tenants.detail", "getTenant", "/GetTenant"),
        ("partitions.detail", "getPartition", "/GetPartition"),
        ("access.detail", "getAccess", "/GetAccess"),
    ] {
        let (status, data) = corpus
            .get(&format!("/ui/pages/{id}/data?id=r1"), &["admin"])
            .await;
        assert_eq!(status, StatusCode::OK, "{id}: {data}");
        assert!(data["data"]["id"].is_string(), "{id}: {data}");
        let sent = corpus.mock.requests("tenancy-svc", path);
        assert_eq!(
            sent.last().unwrap().body,
            json!({"id": "r1"}),
            "{operation}: the route's id"
        );
    }
    let (_, tenant) = corpus
        .get("/ui/pages/tenants.detail/data?id=t1", &["admin"])
        .await;
    assert_eq!(
        tenant,
        json!({"data": project(&corpus.sample("tenancy-svc", "getTenant"), &["id", "name", "description", "state"])})
    );
    let (status, _) = corpus
        .get("/ui/pages/tenants.detail/data", &["admin"])
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "without the route's id the backend is asked without it"
    );

    // Sections with their own data sources and a table.
    let (status, stats) = corpus
        .get("/ui/pages/redirect.link_stats/data?id=l1", &["admin"])
        .await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    let link = &corpus.sample("redirect-svc", "getLink")["data"];
    let overview = [
        "id",
        "title",
        "slug",
        "destination_url",
        "affiliate_id",
        "campaign",
        "source",
        "medium",
        "state",
        "click_count",
        "unique_click_count",
        "max_clicks",
        "expires_at",
        "created_at",
    ];
    assert_eq!(
        stats["sections"]["overview"],
        json!({"data": project(link, &overview)})
    );
    let link_stats = &corpus.sample("redirect-svc", "getLinkStats")["data"];
    assert_eq!(
        stats["sections"]["stats"],
        json!({"data": project(link_stats, &["total_clicks", "unique_clicks"])})
    );
    let clicks = &corpus.sample("redirect-svc", "listClicks")["data"];
    let click_fields = [
        "id",
        "created_at",
        "country",
        "city",
        "device_type",
        "browser",
        "os",
        "referer",
        "ip_address",
    ];
    assert_eq!(
        stats["sections"]["clicks"],
        json!({
            "items": [project(&clicks[0], &click_fields), project(&clicks[1], &click_fields)],
            "page": 1,
            "page_size": 50,
        })
    );
    assert!(
        stats.get("items").is_none() && stats.get("data").is_none(),
        "{stats}"
    );
    for (path, body) in [
        ("/GetLink", json!({"id": "l1"})),
        ("/GetLinkStats", json!({"link_id": "l1"})),
        ("/ListClicks", json!({"link_id": "l1"})),
    ] {
        let sent = corpus.mock.requests("redirect-svc", path);
        assert_eq!(sent.last().unwrap().body, body, "{path}");
    }
    // One section alone, to page its table.
    let (_, page_two) = corpus
        .get(
            "/ui/pages/redirect.link_stats/data?id=l1&section=clicks&page=2",
            &["admin"],
        )
        .await;
    assert_eq!(page_two["page"], 2);
    assert_eq!(page_two["items"].as_array().unwrap().len(), 2);
    let (status, _) = corpus
        .get(
            "/ui/pages/redirect.link_stats/data?id=l1&section=nope",
            &["admin"],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A form's record: the query string's id reaches the ConnectRPC body,
    // and the record is read at the load source's items_path.
    let (status, form) = corpus
        .get("/ui/forms/redirect.edit_link_form/data?id=l1", &["admin"])
        .await;
    assert_eq!(status, StatusCode::OK, "{form}");
    let edit_fields = [
        "id",
        "destination_url",
        "title",
        "state",
        "campaign",
        "source",
        "medium",
        "content",
        "term",
        "max_clicks",
        "expires_at",
    ];
    assert_eq!(form, json!({"data": project(link, &edit_fields)}));
    assert_eq!(
        corpus
            .mock
            .requests("redirect-svc", "/GetLink")
            .last()
            .unwrap()
            .body,
        json!({"id": "l1"})
    );

    // Every inline lookup of every form and page view: its options.
    let mut lookup_ids = BTreeSet::new();
    for (list, kind) in [("forms", "forms"), ("pages", "pages")] {
        for element in corpus.elements(list) {
            let id = element["id"].as_str().unwrap();
            let (_, view) = corpus.get(&format!("/ui/{kind}/{id}"), &["admin"]).await;
            collect_lookup_ids(&view, &mut lookup_ids);
        }
    }
    let inline: Vec<&String> = lookup_ids
        .iter()
        .filter(|id| id.starts_with("form:") || id.starts_with("page:"))
        .collect();
    assert_eq!(inline.len(), 11, "{inline:?}");
    for id in &inline {
        let (status, body) = corpus.get(&format!("/ui/lookups/{id}"), &["admin"]).await;
        assert_eq!(status, StatusCode::OK, "{id}: {body}");
        assert_eq!(
            body["options"].as_array().map(Vec::len),
            Some(2),
            "{id}: {body}"
        );
    }
    let (_, parents) = corpus
        .get(
            "/ui/lookups/form:partitions.create_form:parent_id",
            &["admin"],
        )
        .await;
    let partitions = corpus.sample("tenancy-svc", "listPartitions");
    assert_eq!(
        parents,
        json!({"options": [
            {"label": partitions["data"][0]["name"], "value": partitions["data"][0]["id"]},
            {"label": partitions["data"][1]["name"], "value": partitions["data"][1]["id"]},
        ]})
    );
    // Cached like a named lookup: asked again, the backend is not.
    let before = corpus.mock.requests("tenancy-svc", "/ListPartition").len();
    corpus
        .get(
            "/ui/lookups/form:partitions.create_form:parent_id",
            &["admin"],
        )
        .await;
    assert_eq!(
        corpus.mock.requests("tenancy-svc", "/ListPartition").len(),
        before
    );
    // Only for callers who may see the form.
    let (status, _) = corpus
        .get(
            "/ui/lookups/form:partitions.create_form:parent_id",
            &["tenant_viewer"],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // What every backend request carries besides the token.
    let all = corpus.mock.received.lock().unwrap().clone();
    assert!(!all.is_empty());
    for request in all.iter().filter(|r| r.service != "settings-svc") {
        assert_eq!(request.header("x-tenant-id"), "acme", "{}", request.path);
        assert_eq!(request.header("x-partition-id"), "eu");
        assert_eq!(request.header("x-request-subject"), "alice");
        assert!(!request.header("x-correlation-id").is_empty());
        assert!(request.header("authorization").starts_with("Bearer "));
    }
    let (_, _) = corpus.get("/ui/pages/settings.list/data", &["admin"]).await;
    let settings = corpus.mock.requests("settings-svc", "/ListSettings");
    let last = settings.last().expect("settings-svc was called");
    assert_eq!(last.header("x-org-id"), "acme", "renamed for this service");
    assert_eq!(
        last.header("x-request-subject"),
        "",
        "left out for this service"
    );
    assert_eq!(last.header("x-tenant-id"), "");
}

/// Every `lookup_id` in a view.
fn collect_lookup_ids(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(object) => {
            if let Some(id) = object.get("lookup_id").and_then(Value::as_str) {
                out.insert(id.to_string());
            }
            object.values().for_each(|v| collect_lookup_ids(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_lookup_ids(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_commands_send_what_their_mappings_say_and_answer_in_full() {
    let corpus = serve_corpus(Some(EXTRAS)).await;
    let admin = harness::token(&["admin"]);
    let run = |id: &str, input: Value| {
        let request = client()
            .post(corpus.bff.url(&format!("/ui/commands/{id}")))
            .bearer_auth(&admin)
            .json(&json!({ "input": input }));
        harness::answer(request)
    };

    // `output.type: full`: the backend's whole answer is the result.
    let (status, body) = run(
        "access-control.createTenant",
        json!({"name": "Acme", "description": "d"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"success": true, "result": corpus.sample("tenancy-svc", "createTenant")})
    );
    let sent = corpus.mock.requests("tenancy-svc", "/CreateTenant");
    assert_eq!(
        sent[0].body,
        json!({"data": {"name": "Acme", "description": "d"}})
    );

    // A bare word in a projection is that text.
    let (status, body) = run("redirect.pauseLink", json!({"id": "l1"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"], "Link paused.");
    let sent = corpus.mock.requests("redirect-svc", "/UpdateLink");
    assert_eq!(
        sent[0].body,
        json!({"id": "l1", "state": "LINK_STATE_PAUSED"})
    );

    // Decimal weights: the search merges providers.
    let (status, body) = corpus.get("/ui/search?q=na", &["admin"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!body["results"].as_array().unwrap().is_empty(), "{body}");

    // Beyond the corpus: a version that is not semver loads, a confirm
    // action runs its command, a partition-scoped lookup is cached per
    // partition.
    let (status, page) = corpus.get("/ui/pages/extras.tenants", &["admin"]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        page["table"]["row_actions"][0],
        json!({"id": "remove", "label": "Remove", "type": "confirm", "command_id": "extras.remove",
               "confirmation": {"title": "Remove", "message": "Sure?"}})
    );
    let (status, body) = run("extras.remove", json!({"id": "a1"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        corpus.mock.requests("tenancy-svc", "/RemoveAccess")[0].body,
        json!({"id": "a1"})
    );

    let calls = || corpus.mock.requests("tenancy-svc", "/ListPartition").len();
    let lookup = |partition: &'static str| {
        let request = client()
            .get(corpus.bff.url("/ui/lookups/extras.partitions"))
            .bearer_auth(&admin)
            .header("X-Partition-Id", partition);
        harness::answer(request)
    };
    let start = calls();
    let (status, body) = lookup("eu").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    lookup("eu").await;
    assert_eq!(calls(), start + 1, "cached for the partition");
    lookup("eu/west").await;
    assert_eq!(calls(), start + 2, "another partition asks again");
}

/// Features the corpus does not use, on the corpus's specs.
const EXTRAS: &str = r#"domain: extras
version: "2024.06-beta"
pages:
  - id: extras.tenants
    title: Tenants
    route: /extras/tenants
    layout: table
    table:
      data_source: {operation_id: listTenants, service_id: tenancy-svc, mapping: {items_path: data}}
      columns: [{field: name, label: Name}]
      row_actions:
        - {id: remove, label: Remove, type: confirm, command_id: extras.remove, confirmation: {title: Remove, message: Sure?}}
commands:
  - id: extras.remove
    operation: {operation_id: removeAccess, service_id: tenancy-svc}
    input: {body_mapping: projection, field_projection: {id: input.id}}
    output: {type: full}
lookups:
  - id: extras.partitions
    operation: {operation_id: listPartitions, service_id: tenancy-svc}
    label_field: name
    value_field: id
    cache: {scope: partition}
"#;

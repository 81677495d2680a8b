//! Every refusal path of the membrane, from manifest and policy files under
//! `tests/fixtures/plugins/`: load-time refusals (api-incompatible, unknown manifest key,
//! root-equivalent combination without acknowledgement, unknown plugin) and call-time
//! violations (ungranted surface, host not allowed, private address, revoked context), each
//! audited.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use plugin_api::{Format, Origin, Version};
use runtime::plugins::demo::Demo;
use runtime::plugins::{
    LoadError, ManifestSource, OutboundRequest, Plugin, PluginContext, PluginError, Plugins, RouteRequest, read_policy,
};
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plugins").join(name)
}

/// A plugin whose manifest is a fixture file (its name and API version are read from it).
struct FilePlugin {
    name: String,
    api: Version,
    source: ManifestSource,
}

impl FilePlugin {
    fn from_file(file: &str) -> Arc<dyn Plugin> {
        let path = fixture(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let format = Format::from_extension(path.extension().unwrap().to_str().unwrap()).unwrap();
        let value: Value = match format {
            Format::Json => serde_json::from_str(&text).unwrap(),
            _ => serde_json::to_value(plugin_api::Manifest::parse(&text, format).unwrap()).unwrap(),
        };
        let name = value["name"].as_str().unwrap().to_owned();
        let api = Version::parse(value["apiVersion"].as_str().unwrap()).unwrap();
        Arc::new(FilePlugin { name, api, source: ManifestSource { text, format } })
    }
}

#[async_trait]
impl Plugin for FilePlugin {
    fn name(&self) -> &str {
        &self.name
    }
    fn api_version(&self) -> Version {
        self.api
    }
    fn manifest(&self, _config: Option<&Value>) -> ManifestSource {
        self.source.clone()
    }
    async fn init(&self, _ctx: PluginContext) -> Result<(), PluginError> {
        Ok(())
    }
}

async fn load(policy: &str, plugin: Arc<dyn Plugin>, origin: Origin) -> Result<Plugins, LoadError> {
    let policy = read_policy(&fixture(policy)).unwrap();
    Plugins::load(&policy, vec![(plugin, origin)]).await
}

async fn demo(policy: &str) -> (Plugins, PluginContext) {
    let plugins = load(policy, Arc::new(Demo), Origin::Builtin).await.unwrap();
    let ctx = plugins.context("demo").unwrap();
    (plugins, ctx)
}

fn assert_audited(plugins: &Plugins, reason: &str) {
    let audit = plugins.audit();
    assert!(audit.iter().any(|r| r.plugin == "demo" && r.reason == reason), "{reason} not in {audit:#?}");
}

#[tokio::test]
async fn an_ungranted_surface_is_refused_and_audited() {
    let (plugins, ctx) = demo("demo-minimal.toml").await;
    let e = ctx.storage().get("hits").await.unwrap_err();
    assert_eq!(e.reason(), "capability_not_granted", "{e}");
    assert!(e.to_string().contains("ctx.storage"), "{e}");
    assert_eq!(ctx.http().get("http://api.example.com/").await.unwrap_err().reason(), "capability_not_granted");
    assert_eq!(
        ctx.scheduler().after(std::time::Duration::ZERO, async {}).unwrap_err().reason(),
        "capability_not_granted"
    );
    assert_eq!(ctx.session_events().subscribe().unwrap_err().reason(), "capability_not_granted");
    assert_eq!(ctx.notifications().claim("x", |_| {}).unwrap_err().reason(), "capability_not_granted");
    assert_eq!(ctx.secrets().mtls("x").unwrap_err().reason(), "capability_not_granted");
    assert_audited(&plugins, "capability_not_granted");
    // The route still answers, without the counter it may not store.
    let answer = plugins.dispatch(get("/plugins/demo/hello")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&answer.body).unwrap(), json!({"hello": "world"}));
}

fn get(path: &str) -> RouteRequest {
    RouteRequest {
        method: hyper::Method::GET,
        path: path.to_owned(),
        query: None,
        headers: hyper::HeaderMap::new(),
        body: bytes::Bytes::new(),
    }
}

#[tokio::test]
async fn routes_dispatch_and_unknown_paths_are_json_404() {
    let (plugins, _ctx) = demo("demo-outbound.json").await;
    for n in 1..=2 {
        let answer = plugins.dispatch(get("/plugins/demo/hello")).await;
        assert_eq!(serde_json::from_slice::<Value>(&answer.body).unwrap(), json!({"hello": "world", "hits": n}));
    }
    assert!(plugins.handles("/plugins/nope/x"));
    let answer = plugins.dispatch(get("/plugins/demo/nope")).await;
    assert_eq!((answer.status.as_u16(), answer.content_type), (404, "application/json"));
    let mut post = get("/plugins/demo/hello");
    post.method = hyper::Method::POST;
    assert_eq!(plugins.dispatch(post).await.status, 405);
}

#[tokio::test]
async fn a_host_outside_the_allowlist_is_refused() {
    let (plugins, ctx) = demo("demo-outbound.json").await;
    let e = ctx.http().get("http://evil.example.com/x").await.unwrap_err();
    assert_eq!(e.reason(), "host_not_allowed", "{e}");
    assert_eq!(ctx.http().get("http://127.0.0.1:9/").await.unwrap_err().reason(), "invalid_url");
    assert_eq!(ctx.http().get("ftp://api.example.com/").await.unwrap_err().reason(), "scheme_not_allowed");
    assert_eq!(ctx.http().get("not a url").await.unwrap_err().reason(), "invalid_url");
    assert_audited(&plugins, "host_not_allowed");
}

#[tokio::test]
async fn a_private_address_is_refused_even_for_an_allowed_host() {
    let (plugins, ctx) = demo("demo-outbound.json").await;
    let e = ctx.http().request(OutboundRequest::get("http://localhost:9/")).await.unwrap_err();
    assert_eq!(e.reason(), "private_address", "{e}");
    assert_audited(&plugins, "private_address");
}

#[tokio::test]
async fn https_calls_pass_the_same_host_and_address_checks() {
    let (plugins, ctx) = demo("demo-outbound.json").await;
    assert_eq!(ctx.http().get("https://evil.example.com/").await.unwrap_err().reason(), "host_not_allowed");
    assert_eq!(ctx.http().get("https://127.0.0.1/").await.unwrap_err().reason(), "invalid_url");
    assert_eq!(ctx.http().get("https://localhost:9/").await.unwrap_err().reason(), "private_address");
    assert_audited(&plugins, "private_address");
}

#[tokio::test]
async fn an_incompatible_api_version_is_refused() {
    let e = load("future-policy.json", FilePlugin::from_file("future-api.json"), Origin::External).await.unwrap_err();
    assert_eq!(e.reason(), "api_version_incompatible", "{e}");
    assert!(e.to_string().contains("2.0.0"), "{e}");
}

#[tokio::test]
async fn an_unknown_manifest_key_is_refused() {
    let e = load("sneaky-policy.json", FilePlugin::from_file("unknown-key.json"), Origin::External).await.unwrap_err();
    assert_eq!(e.reason(), "manifest_invalid", "{e}");
    assert!(e.to_string().contains("sandbox"), "{e}");
}

#[tokio::test]
async fn a_root_equivalent_combination_needs_an_acknowledgement() {
    let e = load("exfil-policy.json", FilePlugin::from_file("exfil.toml"), Origin::External).await.unwrap_err();
    assert_eq!(e.reason(), "external_root_combination", "{e}");
    let ok = load("exfil-acknowledged.json", FilePlugin::from_file("exfil.toml"), Origin::External).await.unwrap();
    assert_eq!(ok.names(), ["exfil"]);
}

#[tokio::test]
async fn a_policy_entry_for_an_unknown_plugin_is_refused() {
    let e = load("exfil-policy.json", Arc::new(Demo), Origin::Builtin).await.unwrap_err();
    assert_eq!(e.reason(), "unknown_plugin", "{e}");
}

#[tokio::test]
async fn without_an_entry_nothing_loads_and_teardown_revokes_everything() {
    let policy = plugin_api::load_policy(r#"{"plugins": {}}"#, Format::Json).unwrap();
    let none = Plugins::load(&policy, vec![(Arc::new(Demo), Origin::Builtin)]).await.unwrap();
    assert!(none.names().is_empty());

    let (plugins, ctx) = demo("demo-outbound.json").await;
    let mut registry = arcp_server::AgentRegistry::new();
    assert_eq!(plugins.register_agents(&mut registry).unwrap(), ["demo.hello"]);
    assert!(registry.names().contains(&"demo.hello".to_owned()));
    assert_eq!(ctx.agents().register("late", |_j, v| async move { Ok(v) }).unwrap_err().reason(), "invalid_argument");
    ctx.storage().set("k", json!(1)).await.unwrap();
    plugins.teardown().await;
    assert!(ctx.is_revoked());
    assert_eq!(ctx.storage().get("k").await.unwrap_err().reason(), "context_revoked");
    assert_eq!(ctx.http().get("http://api.example.com/").await.unwrap_err().reason(), "context_revoked");
    assert_eq!(ctx.routes().get("/x", |_r| async { unreachable!() }).unwrap_err().reason(), "context_revoked");
    assert_eq!(plugins.dispatch(get("/plugins/demo/hello")).await.status, 404);
    assert_audited(&plugins, "context_revoked");
}

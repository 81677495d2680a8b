//! `routes`: HTTP routes under the plugin's mount point (`/plugins/<name>/` for an `auto`
//! prefix). The listener (`http.rs`) hands every request whose path lies under a mount point
//! to [`RouteTable::dispatch`]; the route's context is checked at call time, and a revoked
//! plugin's routes are removed.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use hyper::{HeaderMap, Method, StatusCode};
use parking_lot::RwLock;
use plugin_api::Capability;
use serde_json::Value;

use super::PluginError;
use super::context::PluginContext;

/// The largest request body handed to a plugin route, in bytes.
pub const MAX_ROUTE_BODY: usize = 1024 * 1024;
/// The most routes one plugin may register.
pub const MAX_ROUTES_PER_PLUGIN: usize = 64;

/// A request as a plugin route sees it.
#[derive(Debug, Clone)]
pub struct RouteRequest {
    /// The method.
    pub method: Method,
    /// The path relative to the mount point, starting with `/` (`/deliveries`).
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The request headers.
    pub headers: HeaderMap,
    /// The body (at most [`MAX_ROUTE_BODY`] bytes).
    pub body: Bytes,
}

/// A plugin route's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteResponse {
    /// The status.
    pub status: StatusCode,
    /// The `content-type`.
    pub content_type: &'static str,
    /// The body.
    pub body: Bytes,
}

impl RouteResponse {
    /// A JSON answer.
    pub fn json(status: StatusCode, value: &Value) -> Self {
        Self { status, content_type: "application/json", body: Bytes::from(value.to_string()) }
    }

    /// The JSON error shape of the listener (`{"error", "reason"}`).
    pub fn error(status: StatusCode, error: &str, reason: &str) -> Self {
        Self::json(status, &serde_json::json!({"error": error, "reason": reason}))
    }
}

/// A route handler.
pub type Handler = Arc<dyn Fn(RouteRequest) -> BoxFuture<'static, RouteResponse> + Send + Sync>;

struct Mounted {
    plugin: String,
    /// The mount point without its trailing `/` (`/plugins/demo`).
    mount: String,
    method: Method,
    path: String,
    ctx: PluginContext,
    handler: Handler,
}

/// Every plugin route.
#[derive(Default)]
pub(crate) struct RouteTable {
    routes: RwLock<Vec<Mounted>>,
}

impl RouteTable {
    pub(crate) fn remove_plugin(&self, plugin: &str) {
        self.routes.write().retain(|r| r.plugin != plugin);
    }

    /// Whether `path` lies under a plugin mount point or `/plugins/`.
    pub(crate) fn handles(&self, path: &str) -> bool {
        path == "/plugins" || path.starts_with("/plugins/") || self.routes.read().iter().any(|r| under(path, &r.mount))
    }

    /// The route's answer; a JSON `404` for an unknown path, `405` for a known path with
    /// another method, `403` if the plugin lost its grant or was revoked.
    pub(crate) async fn dispatch(&self, mut req: RouteRequest) -> RouteResponse {
        let full = std::mem::take(&mut req.path);
        let found = {
            let routes = self.routes.read();
            let mut path_known = false;
            let mut hit = None;
            for r in routes.iter() {
                let Some(rel) = full.strip_prefix(&r.mount) else { continue };
                if rel != r.path {
                    continue;
                }
                path_known = true;
                if r.method == req.method || (req.method == Method::HEAD && r.method == Method::GET) {
                    hit = Some((r.ctx.clone(), r.handler.clone(), rel.to_owned()));
                    break;
                }
            }
            hit.ok_or(path_known)
        };
        match found {
            Ok((ctx, handler, rel)) => {
                if ctx.check(Capability::Routes).is_err() {
                    return RouteResponse::error(StatusCode::FORBIDDEN, "the plugin may not serve routes", "forbidden");
                }
                req.path = rel;
                handler(req).await
            }
            Err(true) => {
                RouteResponse::error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed", "method-not-allowed")
            }
            Err(false) => RouteResponse::error(StatusCode::NOT_FOUND, "not found", "not-found"),
        }
    }
}

fn under(path: &str, mount: &str) -> bool {
    path.strip_prefix(mount).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The `routes` surface.
#[derive(Debug)]
pub struct Routes<'a> {
    pub(crate) ctx: &'a PluginContext,
}

impl Routes<'_> {
    /// Serves `method` at `path` (relative to the mount point, starting with `/`).
    pub fn route<F, Fut>(&self, method: Method, path: &str, handler: F) -> Result<(), PluginError>
    where
        F: Fn(RouteRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RouteResponse> + Send + 'static,
    {
        self.ctx.check(Capability::Routes)?;
        let valid = path.starts_with('/')
            && path.len() <= 256
            && !path.contains("//")
            && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b));
        if !valid {
            return Err(PluginError::Invalid(format!("route path {path:?} must be `/` and [A-Za-z0-9/_.-]")));
        }
        let Some(mount) = self.ctx.grant().mount_point() else {
            return Err(PluginError::Invalid("the plugin has no mount point".to_owned()));
        };
        let mount = mount.trim_end_matches('/').to_owned();
        let plugin = self.ctx.plugin().to_string();
        let table = &self.ctx.inner.shared.routes;
        let mut routes = table.routes.write();
        if routes.iter().filter(|r| r.plugin == plugin).count() >= MAX_ROUTES_PER_PLUGIN {
            return Err(PluginError::Invalid(format!("at most {MAX_ROUTES_PER_PLUGIN} routes per plugin")));
        }
        if routes.iter().any(|r| r.mount == mount && r.path == path && r.method == method) {
            return Err(PluginError::Invalid(format!("{method} {path} is already routed")));
        }
        let handler: Handler = Arc::new(move |req| Box::pin(handler(req)));
        routes.push(Mounted { plugin, mount, method, path: path.to_owned(), ctx: self.ctx.clone(), handler });
        Ok(())
    }

    /// [`Routes::route`] for `GET` (also answers `HEAD`).
    pub fn get<F, Fut>(&self, path: &str, handler: F) -> Result<(), PluginError>
    where
        F: Fn(RouteRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RouteResponse> + Send + 'static,
    {
        self.route(Method::GET, path, handler)
    }

    /// [`Routes::route`] for `POST`.
    pub fn post<F, Fut>(&self, path: &str, handler: F) -> Result<(), PluginError>
    where
        F: Fn(RouteRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RouteResponse> + Send + 'static,
    {
        self.route(Method::POST, path, handler)
    }
}

//! The API itself, independent of HTTP plumbing: routing of API paths, the verbs, and the
//! write pipeline (defaulting, validation, managed fields, resourceVersion, generation).

use crate::apply::{self, ManagedEntry, WriteContext};
use crate::objects;
use crate::patch;
use crate::registry::{self, Entry, Registry};
use crate::schema::Target;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::{self, ApiError, ApiResult};
use crate::store::{Event, EventType, ResourceKey, Store};
use crate::table::{self, IncludeObject};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::broadcast;

/// One HTTP request, reduced to what the API needs.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Decoded query parameters.
    pub query: Vec<(String, String)>,
    /// `Content-Type` header.
    pub content_type: String,
    /// `Accept` header.
    pub accept: String,
    /// `User-Agent` header.
    pub user_agent: String,
    /// Request body.
    pub body: Vec<u8>,
    /// `host:port` the client reached, for `/api`'s serverAddressByClientCIDRs.
    pub server_address: String,
}

/// How a response body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `application/json`.
    Json,
    /// `application/yaml`.
    Yaml,
    /// Aggregated discovery v2 (JSON with a content type kubectl checks).
    AggregatedDiscovery,
}

/// A watch to stream: events already due, then live ones.
pub struct WatchStream {
    /// Lines to send first (already serialised watch events).
    pub initial: Vec<Value>,
    /// Live events.
    pub events: broadcast::Receiver<Arc<Event>>,
    /// Which events to forward.
    pub filter: WatchFilter,
    /// Stop after this long.
    pub timeout: Option<Duration>,
}

/// Which store events a watch forwards, and how.
#[derive(Clone, Debug)]
pub struct WatchFilter {
    resource: ResourceKey,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    /// Set when the client asked for Table output (`kubectl get -w`): each event then
    /// carries a one-row Table, as the API server sends.
    table: Option<(crate::registry::Kind, IncludeObject)>,
}

impl WatchFilter {
    fn matches(&self, obj: &Value) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| obj["metadata"]["namespace"].as_str() == Some(ns))
            && self.labels.matches_object(obj)
            && self.fields.matches(obj)
    }

    /// The watch event to send for a store event, if any; selector changes turn
    /// modifications into ADDED or DELETED, as the API server's watch cache does.
    pub fn translate(&self, ev: &Event) -> Option<Value> {
        if ev.resource != self.resource {
            return None;
        }
        let now = self.matches(&ev.object);
        let kind = match ev.kind {
            EventType::Modified => {
                let before = ev.old.as_ref().is_some_and(|o| self.matches(o));
                match (before, now) {
                    (true, true) => EventType::Modified,
                    (false, true) => EventType::Added,
                    (true, false) => EventType::Deleted,
                    (false, false) => return None,
                }
            }
            k if now => k,
            _ => return None,
        };
        Some(json!({"type": kind.as_str(), "object": self.render(&ev.object)}))
    }

    fn render(&self, obj: &Value) -> Value {
        match &self.table {
            None => obj.clone(),
            Some((kind, include)) => table::table(
                kind,
                std::slice::from_ref(obj),
                json!({"resourceVersion": meta_str(obj, "resourceVersion")}),
                *include,
            ),
        }
    }
}

/// What the API answers.
pub enum Reply {
    /// A document with a status code.
    Doc {
        /// HTTP status.
        code: u16,
        /// Body.
        body: Value,
        /// Encoding.
        encoding: Encoding,
    },
    /// Plain text (health endpoints).
    Text(u16, String),
    /// A watch stream.
    Watch(Box<WatchStream>),
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Reply {
        Reply::Doc {
            code: e.code,
            body: e.body,
            encoding: Encoding::Json,
        }
    }
}

fn ok(code: u16, body: Value) -> Reply {
    Reply::Doc {
        code,
        body,
        encoding: Encoding::Json,
    }
}

/// Response shapes a client can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Plain(Encoding),
    Table,
    PartialMetadata,
}

fn negotiate(accept: &str) -> ApiResult<Output> {
    if accept.trim().is_empty() {
        return Ok(Output::Plain(Encoding::Json));
    }
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let params: HashMap<String, String> = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let json_like = matches!(media.as_str(), "application/json" | "*/*" | "application/*");
        if json_like && let Some(as_) = params.get("as") {
            let meta = params.get("g").is_none_or(|g| g == "meta.k8s.io");
            match as_.as_str() {
                "Table" if meta => return Ok(Output::Table),
                "PartialObjectMetadata" | "PartialObjectMetadataList" if meta => {
                    return Ok(Output::PartialMetadata);
                }
                _ => continue,
            }
        }
        if json_like {
            return Ok(Output::Plain(Encoding::Json));
        }
        if media == "application/yaml" {
            return Ok(Output::Plain(Encoding::Yaml));
        }
    }
    Err(status::not_acceptable(accept))
}

/// Whether the client asked for aggregated discovery v2 (kubectl 1.30+ does).
fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|r| {
        let r = r.replace(' ', "");
        r.contains("as=APIGroupDiscoveryList")
            && r.contains("g=apidiscovery.k8s.io")
            && r.contains("v=v2")
            && !r.contains("v=v2beta1")
    })
}

struct Query(HashMap<String, String>);

impl Query {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }

    fn dry_run(&self) -> ApiResult<bool> {
        match self.get("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(v) => Err(status::bad_request(format!(
                "Invalid dry run value: {v:?}: supported values: \"All\""
            ))),
        }
    }
}

/// Where an API path points.
struct ResourcePath<'r> {
    entry: &'r Entry,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

enum Route<'r> {
    Version,
    Health,
    ApiRoot,
    ApisRoot,
    Group(String),
    ResourceList(String, String),
    Resource(ResourcePath<'r>),
    NotFound,
}

fn route<'r>(registry: &'r Registry, path: &str) -> Route<'r> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["version"] => return Route::Version,
        ["healthz" | "livez" | "readyz", ..] => return Route::Health,
        ["api"] => return Route::ApiRoot,
        ["apis"] => return Route::ApisRoot,
        ["apis", g] => return Route::Group(g.to_string()),
        ["api", v] => return Route::ResourceList(String::new(), v.to_string()),
        ["apis", g, v] => return Route::ResourceList(g.to_string(), v.to_string()),
        ["api", v, rest @ ..] => ("", v, rest),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => return Route::NotFound,
    };
    let find = |plural: &str| registry.by_resource(group, version, plural);
    let target = |entry, namespace: Option<&&str>, name: Option<&&str>, sub: Option<&&str>| {
        Route::Resource(ResourcePath {
            entry,
            namespace: namespace.map(|s| s.to_string()),
            name: name.map(|s| s.to_string()),
            subresource: sub.map(|s| s.to_string()),
        })
    };
    // `namespaces/{ns}/{plural}...` addresses namespaced objects, unless `{plural}` is not a
    // resource (then it is a subresource of the Namespace itself, e.g. `namespaces/x/status`).
    if rest.len() >= 3
        && rest[0] == "namespaces"
        && let Some(e) = find(rest[2]).filter(|e| e.kind.namespaced())
    {
        return match rest.len() {
            3 => target(e, rest.get(1), None, None),
            4 => target(e, rest.get(1), rest.get(3), None),
            5 => target(e, rest.get(1), rest.get(3), rest.get(4)),
            _ => Route::NotFound,
        };
    }
    match rest {
        [plural] => find(plural).map_or(Route::NotFound, |e| target(e, None, None, None)),
        [plural, name] | [plural, name, _] => match find(plural) {
            Some(e) if !e.kind.namespaced() => target(e, None, Some(name), rest.get(2)),
            _ => Route::NotFound,
        },
        _ => Route::NotFound,
    }
}

/// Strips what a client may not set on a stored object's metadata.
fn strip_system_metadata(obj: &mut Value) {
    if let Some(m) = obj["metadata"].as_object_mut() {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "selfLink",
            "managedFields",
        ] {
            m.remove(k);
        }
    }
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o["metadata"].as_object_mut() {
        m.remove("managedFields");
    }
    o
}

fn meta_str<'v>(obj: &'v Value, field: &str) -> &'v str {
    obj["metadata"][field].as_str().unwrap_or_default()
}

/// The manager a non-apply write is recorded under: `fieldManager`, else the user agent's
/// program name, as kube-apiserver does.
fn manager_of(q: &Query, user_agent: &str) -> ApiResult<String> {
    let m = match q.get("fieldManager") {
        Some(m) => m.to_string(),
        None => {
            let prog = user_agent.split('/').next().unwrap_or_default().trim();
            if prog.is_empty() { "unknown" } else { prog }
                .chars()
                .take(128)
                .collect()
        }
    };
    if m.len() > 128 {
        return Err(status::bad_request(format!(
            "fieldManager: Too long: may not be more than 128 bytes (got {})",
            m.len()
        )));
    }
    Ok(m)
}

/// The stateful API.
pub struct Cluster {
    registry: Registry,
    store: Mutex<Store>,
    ca_pem: String,
}

/// Manager name used for objects the emulated control plane creates itself.
const CONTROL_PLANE: &str = "kube-controller-manager";

impl Cluster {
    /// A cluster with the usual namespaces; `ca_pem` goes into each `kube-root-ca.crt`.
    pub fn new(ca_pem: &str) -> Cluster {
        let c = Cluster {
            registry: Registry::new(),
            store: Mutex::new(Store::new()),
            ca_pem: ca_pem.to_string(),
        };
        {
            let mut store = c.lock();
            for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
                let obj =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                let entry = c
                    .registry
                    .by_kind("", "Namespace")
                    .expect("namespaces are served");
                c.create_object(&mut store, entry, obj, None, "kube-apiserver", false)
                    .expect("bootstrap namespaces are valid");
            }
        }
        c
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock must not take the whole emulator down.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The registry of served kinds.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Answers one request.
    pub fn handle(&self, req: &Request) -> Reply {
        match self.dispatch(req) {
            Ok(r) => r,
            Err(e) => e.into(),
        }
    }

    fn dispatch(&self, req: &Request) -> ApiResult<Reply> {
        let q = Query(req.query.iter().cloned().collect());
        let method = req.method.as_str();
        let r = route(&self.registry, &req.path);
        if !matches!(r, Route::Resource(_)) && method != "GET" && method != "HEAD" {
            return match r {
                Route::NotFound => Err(status::no_such_resource()),
                _ => Err(status::method_not_allowed()),
            };
        }
        match r {
            Route::Version => Ok(ok(200, registry::version_info())),
            Route::Health => Ok(Reply::Text(200, "ok".into())),
            Route::ApiRoot if wants_aggregated(&req.accept) => Ok(Reply::Doc {
                code: 200,
                body: self.registry.aggregated_discovery(true),
                encoding: Encoding::AggregatedDiscovery,
            }),
            Route::ApisRoot if wants_aggregated(&req.accept) => Ok(Reply::Doc {
                code: 200,
                body: self.registry.aggregated_discovery(false),
                encoding: Encoding::AggregatedDiscovery,
            }),
            Route::ApiRoot => Ok(ok(200, self.registry.api_versions(&req.server_address))),
            Route::ApisRoot => Ok(ok(200, self.registry.api_group_list())),
            Route::Group(g) => self
                .registry
                .api_group(&g)
                .map(|d| ok(200, d))
                .ok_or_else(status::no_such_resource),
            Route::ResourceList(g, v) => self
                .registry
                .api_resource_list(&g, &v)
                .map(|d| ok(200, d))
                .ok_or_else(status::no_such_resource),
            Route::NotFound => Err(status::no_such_resource()),
            Route::Resource(t) => self.resource(req, &q, t),
        }
    }

    fn resource(&self, req: &Request, q: &Query, t: ResourcePath<'_>) -> ApiResult<Reply> {
        let kind = &t.entry.kind;
        let target = match t.subresource.as_deref() {
            None => Target::Main,
            Some("status") if kind.status_subresource => Target::Status,
            Some("scale") if kind.scale_subresource() => Target::Scale,
            Some(_) => return Err(status::no_such_resource()),
        };
        let method = req.method.as_str();
        let ns = t.namespace.clone();
        if target == Target::Scale {
            let name = t.name.as_deref().unwrap_or_default();
            return self.scale(req, q, t.entry, ns, name);
        }
        match (&t.name, method) {
            (None, "GET") if q.flag("watch") => self.watch(req, q, t.entry, ns),
            (None, "GET") => self.list(req, q, t.entry, ns),
            (None, "POST") => match ns {
                Some(ns) => self.create(req, q, t.entry, Some(ns)),
                None if !kind.namespaced() => self.create(req, q, t.entry, None),
                None => Err(status::method_not_allowed()),
            },
            (None, "DELETE") => self.delete_collection(q, t.entry, ns),
            (Some(name), "GET") => self.get(req, q, t.entry, ns, name),
            (Some(name), "PUT") => self.replace(req, q, t.entry, ns, name, target),
            (Some(name), "PATCH") => self.patch(req, q, t.entry, ns, name, target),
            (Some(name), "DELETE") if target == Target::Main => {
                self.delete(req, q, t.entry, ns, name)
            }
            _ => Err(status::method_not_allowed()),
        }
    }

    // ----- reads -----

    fn get(
        &self,
        req: &Request,
        q: &Query,
        entry: &Entry,
        ns: Option<String>,
        name: &str,
    ) -> ApiResult<Reply> {
        let output = negotiate(&req.accept)?;
        let store = self.lock();
        let obj = store
            .get(res_key(entry), ns.as_deref().unwrap_or(""), name)
            .ok_or_else(|| status::not_found(&entry.kind, name))?
            .clone();
        drop(store);
        Ok(match output {
            Output::Plain(encoding) => Reply::Doc {
                code: 200,
                body: obj,
                encoding,
            },
            Output::Table => ok(
                200,
                table::table(
                    &entry.kind,
                    std::slice::from_ref(&obj),
                    json!({"resourceVersion": meta_str(&obj, "resourceVersion")}),
                    IncludeObject::parse(q.get("includeObject")),
                ),
            ),
            Output::PartialMetadata => ok(200, table::partial_metadata(&obj)),
        })
    }

    fn selectors(&self, q: &Query, entry: &Entry) -> ApiResult<(LabelSelector, FieldSelector)> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(status::bad_request)?;
        let extra: &[&str] = if entry.kind.builtin && entry.kind.kind == "Secret" {
            &["type"]
        } else {
            &[]
        };
        let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), extra)
            .map_err(status::bad_request)?;
        Ok((labels, fields))
    }

    fn list(
        &self,
        req: &Request,
        q: &Query,
        entry: &Entry,
        ns: Option<String>,
    ) -> ApiResult<Reply> {
        let output = negotiate(&req.accept)?;
        let (labels, fields) = self.selectors(q, entry)?;
        let limit: usize = match q.get("limit") {
            None => 0,
            Some(l) => l
                .parse()
                .map_err(|_| status::bad_request(format!("invalid limit {l:?}")))?,
        };
        let start_after: Option<(String, String)> = match q.get("continue") {
            None => None,
            Some(c) => Some(decode_continue(c)?),
        };
        let store = self.lock();
        let rv = store.current_rv();
        let mut matching: Vec<Value> = store
            .list(res_key(entry), ns.as_deref())
            .filter(|o| labels.matches_object(o) && fields.matches(o))
            .filter(|o| {
                start_after.as_ref().is_none_or(|(sn, sname)| {
                    (meta_str(o, "namespace"), meta_str(o, "name")) > (sn.as_str(), sname.as_str())
                })
            })
            .cloned()
            .collect();
        drop(store);
        let mut list_meta = json!({"resourceVersion": rv.to_string()});
        if limit > 0 && matching.len() > limit {
            let remaining = matching.len() - limit;
            matching.truncate(limit);
            let last = matching.last().expect("limit > 0");
            list_meta["continue"] = json!(encode_continue(
                meta_str(last, "namespace"),
                meta_str(last, "name")
            ));
            list_meta["remainingItemCount"] = json!(remaining);
        }
        let kind = &entry.kind;
        Ok(match output {
            Output::Table => ok(
                200,
                table::table(
                    kind,
                    &matching,
                    list_meta,
                    IncludeObject::parse(q.get("includeObject")),
                ),
            ),
            Output::PartialMetadata => ok(
                200,
                json!({
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": list_meta,
                    "items": matching.iter().map(table::partial_metadata).collect::<Vec<_>>(),
                }),
            ),
            Output::Plain(encoding) => {
                // Typed lists of built-in kinds carry no apiVersion/kind per item; custom
                // resources (unstructured) do.
                if kind.builtin {
                    for o in &mut matching {
                        if let Some(m) = o.as_object_mut() {
                            m.remove("apiVersion");
                            m.remove("kind");
                        }
                    }
                }
                Reply::Doc {
                    code: 200,
                    body: json!({
                        "kind": format!("{}List", kind.kind),
                        "apiVersion": kind.api_version(),
                        "metadata": list_meta,
                        "items": matching,
                    }),
                    encoding,
                }
            }
        })
    }

    fn watch(
        &self,
        req: &Request,
        q: &Query,
        entry: &Entry,
        ns: Option<String>,
    ) -> ApiResult<Reply> {
        let (labels, fields) = self.selectors(q, entry)?;
        let table = match negotiate(&req.accept)? {
            Output::Table => Some((
                entry.kind.clone(),
                IncludeObject::parse(q.get("includeObject")),
            )),
            _ => None,
        };
        let filter = WatchFilter {
            resource: res_key(entry),
            namespace: ns,
            labels,
            fields,
            table,
        };
        let timeout = match q.get("timeoutSeconds") {
            None => None,
            Some(t) => Some(Duration::from_secs(t.parse().map_err(|_| {
                status::bad_request(format!("invalid timeoutSeconds {t:?}"))
            })?)),
        };
        let send_initial = q.flag("sendInitialEvents");
        let rv_param = q.get("resourceVersion").unwrap_or("");
        let store = self.lock();
        let mut initial = Vec::new();
        let events;
        if rv_param.is_empty() || rv_param == "0" || send_initial {
            let current = store.current_rv();
            for o in store.list(filter.resource, filter.namespace.as_deref()) {
                if filter.matches(o) {
                    initial.push(json!({"type": "ADDED", "object": filter.render(o)}));
                }
            }
            if send_initial && q.flag("allowWatchBookmarks") {
                initial.push(json!({"type": "BOOKMARK", "object": {
                    "kind": entry.kind.kind,
                    "apiVersion": entry.kind.api_version(),
                    "metadata": {
                        "resourceVersion": current.to_string(),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                }}));
            }
            events = store.subscribe(filter.resource, current).1;
        } else {
            let rv: u64 = rv_param.parse().map_err(|_| {
                status::bad_request(format!("invalid resource version: {rv_param}"))
            })?;
            if rv < store.oldest_resumable_rv() {
                let gone = status::expired(rv_param);
                initial.push(json!({"type": "ERROR", "object": gone.body}));
                events = store.subscribe(filter.resource, u64::MAX).1;
                drop(store);
                return Ok(Reply::Watch(Box::new(WatchStream {
                    initial,
                    events,
                    filter,
                    timeout: Some(Duration::ZERO),
                })));
            }
            let (past, rx) = store.subscribe(filter.resource, rv);
            initial.extend(past.iter().filter_map(|e| filter.translate(e)));
            events = rx;
        }
        drop(store);
        Ok(Reply::Watch(Box::new(WatchStream {
            initial,
            events,
            filter,
            timeout,
        })))
    }

    // ----- writes -----

    fn decode_body(&self, req: &Request, entry: &Entry) -> ApiResult<Value> {
        let ct = req
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim();
        let v: Value = match ct {
            "" | "application/json" | "*/*" => serde_json::from_slice(&req.body)
                .map_err(|e| status::bad_request(format!("the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {e}", entry.kind.kind)))?,
            "application/yaml" => parse_yaml_or_json(&req.body)?,
            // kubectl's typed clients (`kubectl create namespace|secret|...`) send protobuf.
            "application/vnd.kubernetes.protobuf" if entry.kind.builtin => {
                crate::proto::decode(&req.body).map_err(|e| {
                    let mut err = status::unsupported_media_type(&["application/json", "application/yaml"]);
                    err.body["message"] = json!(e);
                    err
                })?
            }
            _ => {
                return Err(status::unsupported_media_type(&[
                    "application/json",
                    "application/yaml",
                ]));
            }
        };
        self.check_body_kind(v, entry)
    }

    fn check_body_kind(&self, mut v: Value, entry: &Entry) -> ApiResult<Value> {
        if !v.is_object() {
            return Err(status::bad_request(format!(
                "the object provided is unrecognized (must be of type {})",
                entry.kind.kind
            )));
        }
        let want_av = entry.kind.api_version();
        match v.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => v["apiVersion"] = json!(want_av),
            Some(av) if av == want_av => {}
            Some(av) => {
                return Err(status::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({want_av})"
                )));
            }
        }
        match v.get("kind").and_then(Value::as_str) {
            None | Some("") => v["kind"] = json!(entry.kind.kind),
            Some(k) if k == entry.kind.kind => {}
            Some(k) => {
                return Err(status::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    entry.kind.kind
                )));
            }
        }
        if !v["metadata"].is_object() {
            if v["metadata"].is_null() {
                v["metadata"] = json!({});
            } else {
                return Err(status::bad_request("metadata must be an object"));
            }
        }
        Ok(v)
    }

    /// Fills or checks the namespace of a body against the URL's.
    fn check_namespace(&self, v: &mut Value, entry: &Entry, ns: Option<&str>) -> ApiResult<()> {
        if !entry.kind.namespaced() {
            if let Some(m) = v["metadata"].as_object_mut() {
                m.remove("namespace");
            }
            return Ok(());
        }
        let url_ns = ns.unwrap_or_default();
        match v["metadata"]["namespace"].as_str() {
            None | Some("") => v["metadata"]["namespace"] = json!(url_ns),
            Some(b) if b == url_ns => {}
            Some(_) => {
                return Err(status::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
        Ok(())
    }

    fn namespace_exists(&self, store: &Store, ns: &str) -> bool {
        store.get(("", "namespaces"), "", ns).is_some()
    }

    fn create(
        &self,
        req: &Request,
        q: &Query,
        entry: &Entry,
        ns: Option<String>,
    ) -> ApiResult<Reply> {
        let dry_run = q.dry_run()?;
        let manager = manager_of(q, &req.user_agent)?;
        let mut obj = self.decode_body(req, entry)?;
        self.check_namespace(&mut obj, entry, ns.as_deref())?;
        let mut store = self.lock();
        let created = self.create_object(&mut store, entry, obj, None, &manager, dry_run)?;
        Ok(ok(201, created))
    }

    /// The create pipeline; `managers` is set when the object comes from an apply.
    #[allow(clippy::too_many_arguments)]
    fn create_object(
        &self,
        store: &mut Store,
        entry: &Entry,
        mut obj: Value,
        managers: Option<Vec<ManagedEntry>>,
        manager: &str,
        dry_run: bool,
    ) -> ApiResult<Value> {
        let kind = &entry.kind;
        if !meta_str(&obj, "resourceVersion").is_empty() {
            return Err(status::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        if meta_str(&obj, "name").is_empty() {
            let generate = meta_str(&obj, "generateName").to_string();
            if !generate.is_empty() {
                obj["metadata"]["name"] = json!(format!("{generate}{}", objects::name_suffix()));
            }
        }
        let name = meta_str(&obj, "name").to_string();
        let ns = meta_str(&obj, "namespace").to_string();
        if kind.namespaced() && !name.is_empty() && !self.namespace_exists(store, &ns) {
            return Err(status::namespace_not_found(&ns));
        }
        if !name.is_empty() && store.get(res_key(entry), &ns, &name).is_some() {
            return Err(status::already_exists(kind, &name));
        }
        strip_system_metadata(&mut obj);
        if kind.status_subresource
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        objects::default(kind, &mut obj, None);
        objects::check_decodable(kind, &obj)?;
        objects::validate(kind, &obj, None)?;
        obj["metadata"]["uid"] = json!(objects::new_uid());
        obj["metadata"]["creationTimestamp"] = json!(objects::now_rfc3339());
        objects::set_generation(kind, &mut obj, None);
        let now = objects::now_rfc3339();
        let api_version = kind.api_version();
        let managers = match managers {
            Some(m) => m,
            None => {
                let ctx = WriteContext {
                    manager,
                    api_version: &api_version,
                    target: Target::Main,
                    now: &now,
                    schema: &entry.schema,
                };
                apply::update(&json!({}), &obj, Vec::new(), &ctx)
            }
        };
        set_managed(&mut obj, &managers);
        if dry_run {
            return Ok(obj);
        }
        let stored = store.put(res_key(entry), obj);
        if kind.builtin && kind.kind == "Namespace" {
            self.populate_namespace(store, &name);
        }
        Ok(stored)
    }

    /// What controllers put in every new namespace: the `default` ServiceAccount and the
    /// `kube-root-ca.crt` ConfigMap.
    fn populate_namespace(&self, store: &mut Store, ns: &str) {
        let objs = [
            (
                "ServiceAccount",
                json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}}),
            ),
            (
                "ConfigMap",
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "kube-root-ca.crt", "namespace": ns,
                    "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                "data": {"ca.crt": self.ca_pem}}),
            ),
        ];
        for (kind, obj) in objs {
            let entry = self
                .registry
                .by_kind("", kind)
                .expect("core kinds are served");
            // Cannot fail: the namespace exists and the objects are valid.
            let _ = self.create_object(store, entry, obj, None, CONTROL_PLANE, false);
        }
    }

    fn replace(
        &self,
        req: &Request,
        q: &Query,
        entry: &Entry,
        ns: Option<String>,
        name: &str,
        target: Target,
    ) -> ApiResult<Reply> {
        let dry_run = q.dry_run()?;
        let manager = manager_of(q, &req.user_agent)?;
        let mut obj = self.decode_body(req, entry)?;
        self.check_namespace(&mut obj, entry, ns.as_deref())?;
        check_name(&obj, name)?;
        let mut store = self.lock();
        let old = store
            .get(res_key(entry), ns.as_deref().unwrap_or(""), name)
            .ok_or_else(|| status::not_found(&entry.kind, name))?
            .clone();
        let updated = self.update_object(
            &mut store, entry, &old, obj, None, &manager, target, dry_run,
        )?;
        Ok(ok(200, updated))
    }

    /// The update pipeline; `managers` is set when the object comes from an apply.
    #[allow(clippy::too_many_arguments)]
    fn update_object(
        &self,
        store: &mut Store,
        entry: &Entry,
        old: &Value,
        mut new: Value,
        managers: Option<Vec<ManagedEntry>>,
        manager: &str,
        target: Target,
        dry_run: bool,
    ) -> ApiResult<Value> {
        let kind = &entry.kind;
        let name = meta_str(old, "name").to_string();
        let rv = meta_str(&new, "resourceVersion");
        if !rv.is_empty() && rv != meta_str(old, "resourceVersion") {
            return Err(status::conflict(kind, &name));
        }
        let old_managers = apply::decode_managed_fields(old["metadata"].get("managedFields"));
        let managers_given = managers.is_some();
        let mut managers = match managers {
            Some(m) => m,
            None => match new["metadata"].get("managedFields") {
                None | Some(Value::Null) => old_managers,
                Some(v) if Some(v) == old["metadata"].get("managedFields") => old_managers,
                Some(v) => apply::decode_managed_fields(Some(v)),
            },
        };
        // System fields always come from the stored object.
        strip_system_metadata(&mut new);
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            if let Some(v) = old["metadata"].get(k) {
                new["metadata"][k] = v.clone();
            }
        }
        let old_plain = without_managed_fields(old);
        match target {
            Target::Main if kind.status_subresource => match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            },
            Target::Main => {}
            Target::Scale => {
                let replicas = new["spec"].get("replicas").cloned();
                new = old_plain.clone();
                if let Some(r) = replicas {
                    new["spec"]["replicas"] = r;
                }
            }
            Target::Status => {
                let status = new.get("status").cloned();
                new = old_plain.clone();
                match status {
                    Some(s) => new["status"] = s,
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
        }
        objects::default(kind, &mut new, Some(old));
        objects::check_decodable(kind, &new)?;
        objects::validate(kind, &new, Some(&old_plain))?;
        objects::set_generation(kind, &mut new, Some(old));
        if !managers_given {
            let now = objects::now_rfc3339();
            let api_version = kind.api_version();
            let ctx = WriteContext {
                manager,
                api_version: &api_version,
                target,
                now: &now,
                schema: &entry.schema,
            };
            managers = apply::update(&old_plain, &new, managers, &ctx);
        }
        set_managed(&mut new, &managers);
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        if new == *old {
            // A no-op write does not touch storage, so the resourceVersion stays.
            return Ok(new);
        }
        let finalized = !new["metadata"]["deletionTimestamp"].is_null()
            && new["metadata"]["finalizers"]
                .as_array()
                .is_none_or(Vec::is_empty);
        if dry_run {
            return Ok(new);
        }
        if finalized {
            let ns = meta_str(&new, "namespace").to_string();
            store.put(res_key(entry), new);
            return Ok(store
                .remove(res_key(entry), &ns, &name)
                .expect("just stored"));
        }
        Ok(store.put(res_key(entry), new))
    }

    #[allow(clippy::too_many_arguments)]
    fn patch(
        &self,
        req: &Request,
        q: &Query,
        entry: &Entry,
        ns: Option<String>,
        name: &str,
        target: Target,
    ) -> ApiResult<Reply> {
        let dry_run = q.dry_run()?;
        let ct = req
            .content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let kind = &entry.kind;
        let accepted: &[&str] = if kind.builtin {
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
                "application/strategic-merge-patch+json",
            ]
        } else {
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/apply-patch+yaml",
            ]
        };
        if !accepted.contains(&ct.as_str()) {
            return Err(status::unsupported_media_type(accepted));
        }
        if ct == "application/apply-patch+yaml" {
            return self.apply_patch(req, q, entry, ns, name, target, dry_run);
        }
        if q.get("force").is_some() {
            return Err(invalid_options(
                "force",
                "may not be specified for non-apply patch",
            ));
        }
        let manager = manager_of(q, &req.user_agent)?;
        let patch_doc: Value = serde_json::from_slice(&req.body)
            .map_err(|e| status::bad_request(format!("error decoding patch: {e}")))?;
        let mut store = self.lock();
        let old = store
            .get(res_key(entry), ns.as_deref().unwrap_or(""), name)
            .ok_or_else(|| status::not_found(kind, name))?
            .clone();
        let patched = match ct.as_str() {
            "application/merge-patch+json" => {
                if !patch_doc.is_object() {
                    return Err(status::bad_request("merge patch must be a JSON object"));
                }
                patch::merge_patch(&old, &patch_doc)
            }
            "application/strategic-merge-patch+json" => {
                patch::strategic_merge_patch(&old, &patch_doc, &entry.schema)
                    .map_err(status::bad_request)?
            }
            _ => patch::json_patch(&old, &patch_doc).map_err(|e| {
                if e.starts_with("testing value") {
                    status::invalid(
                        kind,
                        name,
                        &[crate::status::FieldError::invalid(
                            "",
                            &json!(e),
                            "the server rejected our request due to an error in our request",
                        )],
                    )
                } else {
                    status::bad_request(e)
                }
            })?,
        };
        let mut patched = self.check_body_kind(patched, entry)?;
        if meta_str(&patched, "name") != name
            || (kind.namespaced() && meta_str(&patched, "namespace") != ns.as_deref().unwrap_or(""))
        {
            return Err(status::invalid(
                kind,
                name,
                &[crate::status::FieldError::invalid(
                    "metadata.name",
                    &patched["metadata"]["name"],
                    "field is immutable",
                )],
            ));
        }
        self.check_namespace(&mut patched, entry, ns.as_deref())?;
        let updated = self.update_object(
            &mut store, entry, &old, patched, None, &manager, target, dry_run,
        )?;
        Ok(ok(200, updated))
    }

    #[allow(clippy::too_many_arguments)]
    fn apply_patch(
        &self,
        req: &Request,
        q: &Query,
        entry: &Entry,
        ns: Option<String>,
        name: &str,
        target: Target,
        dry_run: bool,
    ) -> ApiResult<Reply> {
        let kind = &entry.kind;
        let Some(manager) = q.get("fieldManager").map(str::to_string) else {
            return Err(invalid_options(
                "fieldManager",
                "is required for apply patch",
            ));
        };
        let force = match q.get("force") {
            None | Some("false") => false,
            Some("true") => true,
            Some(v) => {
                return Err(status::bad_request(format!(
                    "invalid boolean value for force: {v:?}"
                )));
            }
        };
        let config = parse_yaml_or_json(&req.body)?;
        if !config.is_object() {
            return Err(status::bad_request(
                "the apply configuration must be an object",
            ));
        }
        for f in ["apiVersion", "kind"] {
            if config
                .get(f)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(status::bad_request(format!(
                    "error decoding YAML: {f} must be set in the apply configuration"
                )));
            }
        }
        let mut config = self.check_body_kind(config, entry)?;
        self.check_namespace(&mut config, entry, ns.as_deref())?;
        check_name(&config, name)?;
        if config["metadata"]
            .get("managedFields")
            .is_some_and(|v| !v.is_null())
        {
            return Err(status::bad_request("metadata.managedFields must be nil"));
        }
        let rv_precondition = meta_str(&config, "resourceVersion").to_string();
        // Only the client-settable parts of metadata take part in the merge.
        if let Some(m) = config["metadata"].as_object_mut() {
            m.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "name"
                        | "namespace"
                        | "labels"
                        | "annotations"
                        | "finalizers"
                        | "ownerReferences"
                )
            });
        }
        let now = objects::now_rfc3339();
        let api_version = kind.api_version();
        let ctx = WriteContext {
            manager: &manager,
            api_version: &api_version,
            target,
            now: &now,
            schema: &entry.schema,
        };
        let mut store = self.lock();
        let live = store
            .get(res_key(entry), ns.as_deref().unwrap_or(""), name)
            .cloned();
        match live {
            None => {
                if target == Target::Status {
                    return Err(status::not_found(kind, name));
                }
                if !rv_precondition.is_empty() {
                    return Err(status::not_found(kind, name));
                }
                let applied = apply::apply(&json!({}), &config, Vec::new(), force, &ctx)
                    .map_err(|c| status::apply_conflict(&c))?;
                let created = self.create_object(
                    &mut store,
                    entry,
                    applied.object,
                    Some(applied.managers),
                    &manager,
                    dry_run,
                )?;
                Ok(ok(201, created))
            }
            Some(old) => {
                if !rv_precondition.is_empty()
                    && rv_precondition != meta_str(&old, "resourceVersion")
                {
                    return Err(status::conflict(kind, name));
                }
                let managers = apply::decode_managed_fields(old["metadata"].get("managedFields"));
                let live_plain = without_managed_fields(&old);
                let applied = apply::apply(&live_plain, &config, managers, force, &ctx)
                    .map_err(|c| status::apply_conflict(&c))?;
                let updated = self.update_object(
                    &mut store,
                    entry,
                    &old,
                    applied.object,
                    Some(applied.managers),
                    &manager,
                    target,
                    dry_run,
                )?;
                Ok(ok(200, updated))
            }
        }
    }

    /// `/scale`: reads and writes `spec.replicas` through an `autoscaling/v1` Scale.
    fn scale(
        &self,
        req: &Request,
        q: &Query,
        entry: &Entry,
        ns: Option<String>,
        name: &str,
    ) -> ApiResult<Reply> {
        let kind = &entry.kind;
        let mut store = self.lock();
        let old = store
            .get(res_key(entry), ns.as_deref().unwrap_or(""), name)
            .ok_or_else(|| status::not_found(kind, name))?
            .clone();
        let current = scale_of(&old);
        let wanted = match req.method.as_str() {
            "GET" => return Ok(ok(200, current)),
            "PUT" => serde_json::from_slice::<Value>(&req.body)
                .map_err(|e| status::bad_request(format!("error decoding Scale: {e}")))?,
            "PATCH" => {
                let doc: Value = serde_json::from_slice(&req.body)
                    .map_err(|e| status::bad_request(format!("error decoding patch: {e}")))?;
                let ct = req
                    .content_type
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim();
                match ct {
                    "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                        patch::merge_patch(&current, &doc)
                    }
                    "application/json-patch+json" => {
                        patch::json_patch(&current, &doc).map_err(status::bad_request)?
                    }
                    _ => {
                        return Err(status::unsupported_media_type(&[
                            "application/json-patch+json",
                            "application/merge-patch+json",
                            "application/strategic-merge-patch+json",
                        ]));
                    }
                }
            }
            _ => return Err(status::method_not_allowed()),
        };
        let replicas = wanted["spec"]["replicas"].clone();
        if !replicas.is_i64() {
            return Err(status::bad_request(
                "Scale spec.replicas must be an integer",
            ));
        }
        let mut new = old.clone();
        new["spec"]["replicas"] = replicas;
        new["metadata"]["resourceVersion"] = wanted["metadata"]["resourceVersion"].clone();
        let manager = manager_of(q, &req.user_agent)?;
        let updated = self.update_object(
            &mut store,
            entry,
            &old,
            new,
            None,
            &manager,
            Target::Scale,
            q.dry_run()?,
        )?;
        Ok(ok(200, scale_of(&updated)))
    }

    fn delete(
        &self,
        req: &Request,
        q: &Query,
        entry: &Entry,
        ns: Option<String>,
        name: &str,
    ) -> ApiResult<Reply> {
        let dry_run = q.dry_run()?;
        let opts: Value = if req.body.is_empty() {
            json!({})
        } else {
            parse_yaml_or_json(&req.body)?
        };
        let dry_run = dry_run
            || opts["dryRun"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == "All"));
        let kind = &entry.kind;
        let ns = ns.unwrap_or_default();
        let mut store = self.lock();
        let old = store
            .get(res_key(entry), &ns, name)
            .ok_or_else(|| status::not_found(kind, name))?
            .clone();
        if let Some(uid) = opts["preconditions"]["uid"].as_str()
            && uid != meta_str(&old, "uid")
        {
            return Err(status::conflict_message(
                kind,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid")
                ),
            ));
        }
        if let Some(rv) = opts["preconditions"]["resourceVersion"].as_str()
            && rv != meta_str(&old, "resourceVersion")
        {
            return Err(status::conflict_message(
                kind,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&old, "resourceVersion")
                ),
            ));
        }
        let deleted = self.delete_object(&mut store, entry, old, dry_run);
        Ok(ok(200, deleted))
    }

    /// Deletes one object: objects with finalizers only get a deletionTimestamp; a
    /// Namespace takes its contents with it.
    fn delete_object(&self, store: &mut Store, entry: &Entry, old: Value, dry_run: bool) -> Value {
        let kind = &entry.kind;
        let ns = meta_str(&old, "namespace").to_string();
        let name = meta_str(&old, "name").to_string();
        let has_finalizers = old["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        if has_finalizers {
            if !old["metadata"]["deletionTimestamp"].is_null() || dry_run {
                return old;
            }
            let mut marked = old;
            marked["metadata"]["deletionTimestamp"] = json!(objects::now_rfc3339());
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if kind.generation {
                let g = marked["metadata"]["generation"].as_i64().unwrap_or(1);
                marked["metadata"]["generation"] = json!(g + 1);
            }
            return store.put(res_key(entry), marked);
        }
        if dry_run {
            return old;
        }
        if kind.builtin && kind.kind == "Namespace" {
            // The namespace controller empties a terminating namespace; here it is immediate.
            for e in self.registry.entries().filter(|e| e.kind.namespaced()) {
                let names: Vec<String> = store
                    .list(res_key(e), Some(&name))
                    .map(|o| meta_str(o, "name").to_string())
                    .collect();
                for n in names {
                    store.remove(res_key(e), &name, &n);
                }
            }
            let mut gone = store.remove(res_key(entry), "", &name).unwrap_or(old);
            gone["status"]["phase"] = json!("Terminating");
            return gone;
        }
        store.remove(res_key(entry), &ns, &name).unwrap_or(old)
    }

    fn delete_collection(&self, q: &Query, entry: &Entry, ns: Option<String>) -> ApiResult<Reply> {
        let dry_run = q.dry_run()?;
        let (labels, fields) = self.selectors(q, entry)?;
        let mut store = self.lock();
        let victims: Vec<Value> = store
            .list(res_key(entry), ns.as_deref())
            .filter(|o| labels.matches_object(o) && fields.matches(o))
            .cloned()
            .collect();
        let mut items = Vec::new();
        for v in victims {
            items.push(self.delete_object(&mut store, entry, v, dry_run));
        }
        let rv = store.current_rv();
        Ok(ok(
            200,
            json!({
                "kind": format!("{}List", entry.kind.kind),
                "apiVersion": entry.kind.api_version(),
                "metadata": {"resourceVersion": rv.to_string()},
                "items": items,
            }),
        ))
    }
}

/// The `autoscaling/v1` Scale view of a workload.
fn scale_of(obj: &Value) -> Value {
    let m = &obj["metadata"];
    let selector = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|l| {
            l.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
            "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"]},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector},
    })
}

fn invalid_options(field: &str, why: &str) -> ApiError {
    let mut e = status::bad_request(format!(
        "PatchOptions.meta.k8s.io \"\" is invalid: {field}: {why}"
    ));
    e.code = 422;
    e.body["code"] = json!(422);
    e.body["reason"] = json!("Invalid");
    e.body["details"] = json!({"group": "meta.k8s.io", "kind": "PatchOptions",
        "causes": [{"reason": "FieldValueRequired", "message": why, "field": field}]});
    e
}

fn check_name(obj: &Value, url_name: &str) -> ApiResult<()> {
    let body_name = meta_str(obj, "name");
    if body_name != url_name {
        return Err(status::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({url_name})"
        )));
    }
    Ok(())
}

fn set_managed(obj: &mut Value, managers: &[ManagedEntry]) {
    let encoded = apply::encode_managed_fields(managers);
    match encoded.as_array() {
        Some(a) if !a.is_empty() => obj["metadata"]["managedFields"] = encoded,
        _ => {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
        }
    }
}

fn res_key(entry: &Entry) -> ResourceKey {
    (entry.kind.group, entry.kind.plural)
}

/// Parses a body that may be JSON or YAML (apply configurations are either).
fn parse_yaml_or_json(body: &[u8]) -> ApiResult<Value> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body).map_err(|_| status::bad_request("body is not UTF-8"))?;
    serde_norway::from_str(text)
        .map_err(|e| status::bad_request(format!("error decoding YAML: {e}")))
}

fn encode_continue(ns: &str, name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!([ns, name]).to_string())
}

fn decode_continue(token: &str) -> ApiResult<(String, String)> {
    let bad = || status::bad_request(format!("continue key is not valid: {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: (String, String) = serde_json::from_slice(&raw).map_err(|_| bad())?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, path: &str, body: Value) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            content_type: "application/json".into(),
            user_agent: "unit-test/1.0".into(),
            body: if body.is_null() {
                Vec::new()
            } else {
                body.to_string().into_bytes()
            },
            ..Request::default()
        }
    }

    fn call(c: &Cluster, r: Request) -> (u16, Value) {
        match c.handle(&r) {
            Reply::Doc { code, body, .. } => (code, body),
            Reply::Text(code, t) => (code, json!(t)),
            Reply::Watch(_) => (0, Value::Null),
        }
    }

    #[test]
    fn routes() {
        let r = Registry::new();
        let names = |p: &str| match route(&r, p) {
            Route::Resource(t) => format!(
                "{}|{}|{}|{}",
                t.entry.kind.plural,
                t.namespace.unwrap_or_default(),
                t.name.unwrap_or_default(),
                t.subresource.unwrap_or_default()
            ),
            Route::NotFound => "404".into(),
            _ => "other".into(),
        };
        assert_eq!(names("/api/v1/namespaces"), "namespaces|||");
        assert_eq!(names("/api/v1/namespaces/x"), "namespaces||x|");
        assert_eq!(names("/api/v1/namespaces/x/status"), "namespaces||x|status");
        assert_eq!(names("/api/v1/namespaces/x/configmaps"), "configmaps|x||");
        assert_eq!(
            names("/api/v1/namespaces/x/configmaps/c"),
            "configmaps|x|c|"
        );
        assert_eq!(
            names("/apis/apps/v1/namespaces/x/deployments/d/status"),
            "deployments|x|d|status"
        );
        assert_eq!(
            names("/apis/keda.sh/v1alpha1/scaledobjects"),
            "scaledobjects|||"
        );
        assert_eq!(names("/api/v1/secrets"), "secrets|||");
        assert_eq!(names("/api/v1/configmaps/x"), "404");
        assert_eq!(names("/apis/apps/v2/deployments"), "404");
    }

    #[test]
    fn create_get_conflict_and_missing_namespace() {
        let c = Cluster::new("CA");
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
        let (code, created) = call(
            &c,
            req("POST", "/api/v1/namespaces/default/configmaps", cm.clone()),
        );
        assert_eq!(code, 201, "{created}");
        assert_eq!(created["metadata"]["namespace"], "default");
        assert!(created["metadata"].get("generation").is_none());
        assert_eq!(
            created["metadata"]["managedFields"][0]["manager"],
            "unit-test"
        );
        let (code, body) = call(
            &c,
            req("POST", "/api/v1/namespaces/default/configmaps", cm.clone()),
        );
        assert_eq!(
            (code, body["reason"].as_str()),
            (409, Some("AlreadyExists"))
        );
        let (code, body) = call(&c, req("POST", "/api/v1/namespaces/nope/configmaps", cm));
        assert_eq!(code, 404);
        assert_eq!(body["message"], "namespaces \"nope\" not found");
        let (code, body) = call(
            &c,
            req(
                "GET",
                "/api/v1/namespaces/default/configmaps/zzz",
                Value::Null,
            ),
        );
        assert_eq!(code, 404);
        assert_eq!(body["message"], "configmaps \"zzz\" not found");
        // Every namespace gets kube-root-ca.crt.
        let (code, _) = call(
            &c,
            req(
                "GET",
                "/api/v1/namespaces/kube-system/configmaps/kube-root-ca.crt",
                Value::Null,
            ),
        );
        assert_eq!(code, 200);
    }

    #[test]
    fn no_op_update_keeps_resource_version() {
        let c = Cluster::new("CA");
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "default"}, "data": {"k": "v"}});
        let (_, created) = call(&c, req("POST", "/api/v1/namespaces/default/configmaps", cm));
        let (code, same) = call(
            &c,
            req(
                "PUT",
                "/api/v1/namespaces/default/configmaps/a",
                created.clone(),
            ),
        );
        assert_eq!(code, 200);
        assert_eq!(
            same["metadata"]["resourceVersion"],
            created["metadata"]["resourceVersion"]
        );
        let mut stale = created.clone();
        stale["data"]["k"] = json!("w");
        let (code, _) = call(
            &c,
            req(
                "PUT",
                "/api/v1/namespaces/default/configmaps/a",
                stale.clone(),
            ),
        );
        assert_eq!(code, 200);
        let (code, body) = call(
            &c,
            req("PUT", "/api/v1/namespaces/default/configmaps/a", stale),
        );
        assert_eq!(code, 409, "{body}");
        assert_eq!(body["reason"], "Conflict");
    }

    #[test]
    fn negotiation() {
        assert_eq!(
            negotiate("application/json;as=Table;v=v1;g=meta.k8s.io,application/json").unwrap(),
            Output::Table
        );
        assert_eq!(
            negotiate("application/json").unwrap(),
            Output::Plain(Encoding::Json)
        );
        assert_eq!(negotiate("").unwrap(), Output::Plain(Encoding::Json));
        assert!(negotiate("application/vnd.kubernetes.protobuf").is_err());
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated("application/json, */*"));
    }
}

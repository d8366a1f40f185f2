//! Static checks of the deployment files (no Docker engine or cluster is needed): they parse, each
//! service gets every setting its binary requires and only settings it knows, and the gateway and
//! the Ingress route paths as SPEC §1.3 says.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use clap::CommandFactory;
use regex::Regex;
use serde_norway::Value;

const APP_SERVICES: [&str; 4] = ["boxes", "realtime", "auth-bridge", "reference-hostapp"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Where a request path ends up.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    To(&'static str),
    Refused,
}

/// SPEC §1.3, one sample path per rule.
fn expected_routes() -> Vec<(&'static str, Route)> {
    let id = "74ee16b5-89be-44f7-bcdd-117f496a90a7";
    let leak: &'static str = Box::leak(format!("/box-users/{id}/ws").into_boxed_str());
    let contact: &'static str = Box::leak(format!("/box-users/{id}/contact").into_boxed_str());
    let settings: &'static str = Box::leak(format!("/box-users/{id}/boxes/{id}/settings").into_boxed_str());
    vec![
        ("/auth/login", Route::To("auth-bridge")),
        ("/auth/refresh", Route::To("auth-bridge")),
        ("/auth/logout", Route::To("auth-bridge")),
        ("/api/v1/accounts/consent/get_consent/", Route::To("auth-bridge")),
        ("/api/v1/authorize/", Route::To("auth-bridge")),
        ("/.well-known/jwks.json", Route::To("auth-bridge")),
        (leak, Route::To("realtime")),
        (contact, Route::To("boxes")),
        (settings, Route::To("boxes")),
        ("/boxes", Route::To("boxes")),
        ("/boxes/joined", Route::To("boxes")),
        ("/box-key-shares/abc", Route::To("boxes")),
        ("/identities/x/crypto/actions", Route::To("boxes")),
        ("/internal/identities/x", Route::Refused),
    ]
}

/// The variables the host-app registry reads (`auth_bridge::registry`).
const REGISTRY_ENV_PREFIXES: [&str; 4] =
    ["HOSTAPP_SECRET_", "HOSTAPP_HMAC_SECRET_", "HOSTAPP_USER_DATA_KEY_", "BOXO_CONNECT_SECRET_"];

/// One setting of a binary: its environment variable, whether it has a default, and whether
/// the binary refuses to start without it.
struct Setting {
    env: String,
    has_default: bool,
    required: bool,
}

/// The settings a service's binary reads, from its clap command (what `--help` prints).
fn settings_of(service: &str) -> Vec<Setting> {
    let command = match service {
        "boxes" => boxes::config::Settings::command(),
        "realtime" => realtime::config::Settings::command(),
        "auth-bridge" => auth_bridge::config::Settings::command(),
        "reference-hostapp" => reference_hostapp::config::Settings::command(),
        other => panic!("no service {other}"),
    };
    command
        .get_arguments()
        .filter_map(|arg| {
            Some(Setting {
                env: arg.get_env()?.to_string_lossy().into_owned(),
                has_default: !arg.get_default_values().is_empty(),
                required: arg.is_required_set(),
            })
        })
        .collect()
}

fn check_settings(service: &str, env: &BTreeSet<String>, file: &str) {
    let settings = settings_of(service);
    assert!(!settings.is_empty(), "{service} has no settings");
    let known: BTreeSet<&str> = settings.iter().map(|s| s.env.as_str()).collect();
    for var in env {
        // RUST_LOG is read by the log setup; the per-host-app and per-miniapp secrets by the
        // host-app registry.
        if var == "RUST_LOG" || (service == "auth-bridge" && REGISTRY_ENV_PREFIXES.iter().any(|p| var.starts_with(p))) {
            continue;
        }
        assert!(known.contains(var.as_str()), "{file}: {service} does not know {var} (it knows {known:?})");
    }
    for s in settings.iter().filter(|s| s.required) {
        assert!(env.contains(&s.env), "{file}: {service} requires {} and it is missing", s.env);
    }
}

#[test]
fn every_binary_documents_its_settings_with_env_and_defaults() {
    for service in APP_SERVICES {
        let settings = settings_of(service);
        let envs: BTreeSet<&str> = settings.iter().map(|s| s.env.as_str()).collect();
        assert!(envs.contains("BIND_ADDR"), "{service}: {envs:?}");
        let bind = settings.iter().find(|s| s.env == "BIND_ADDR").unwrap();
        assert!(bind.has_default, "{service}: BIND_ADDR has a default");
    }
    let boxes: BTreeSet<String> = settings_of("boxes").into_iter().map(|s| s.env).collect();
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "REDIS_CLUSTER_NODES",
        "JWT_PUBLIC_KEY_FILE",
        "JWT_ISSUER",
        "INTERNAL_API_TOKEN",
        "ALLOWED_ORIGINS",
    ] {
        assert!(boxes.contains(var), "boxes documents {var}");
    }
}

#[test]
fn docker_compose_runs_the_whole_system() {
    let doc: Value = serde_norway::from_str(&read("docker-compose.yml")).expect("docker-compose.yml parses");
    let services = doc["services"].as_mapping().expect("services");
    let names: BTreeSet<&str> = services.keys().filter_map(|k| k.as_str()).collect();
    for s in ["postgres", "redis", "gateway"].iter().chain(APP_SERVICES.iter()) {
        assert!(names.contains(s), "compose service {s}");
    }
    // Revocation markers and counters survive a Redis restart.
    let redis_cmd: Vec<&str> = doc["services"]["redis"]["command"]
        .as_sequence()
        .expect("redis command")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(redis_cmd.windows(2).any(|w| w == ["--appendonly", "yes"]), "redis runs with append-only persistence");
    assert!(doc["services"]["redis"]["volumes"].as_sequence().is_some_and(|v| !v.is_empty()), "redis keeps its data");
    assert!(read("deploy/k8s/secrets.yaml").contains("appendonly yes"), "the k8s notes ask for a persistent Redis");
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.matches("FROM ").count() >= 2, "multi-stage Dockerfile");
    assert!(dockerfile.contains("ARG SERVICE"));
    for service in APP_SERVICES {
        let svc = &doc["services"][service];
        let build = &svc["build"];
        // `<<: *service` merges are resolved by Compose; read through them.
        let arg = build["args"]["SERVICE"].as_str().unwrap_or_default();
        assert_eq!(arg, service, "{service} is built from its own binary");
        let env: BTreeSet<String> = svc["environment"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{service} environment"))
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        check_settings(service, &env, "docker-compose.yml");
    }
    let gateway_volumes = format!("{:?}", doc["services"]["gateway"]["volumes"]);
    assert!(gateway_volumes.contains("deploy/gateway/nginx.conf"));
}

/// A `location` block of the gateway.
#[derive(Debug)]
struct Location {
    modifier: String,
    pattern: String,
    target: Route,
}

fn nginx_locations(conf: &str) -> Vec<Location> {
    let upstreams: BTreeMap<String, String> = Regex::new(r"upstream\s+(\w+)\s*\{\s*server\s+([\w-]+):\d+;")
        .unwrap()
        .captures_iter(conf)
        .map(|c| (c[1].to_owned(), c[2].to_owned()))
        .collect();
    let re = Regex::new(r"location\s+(=|\^~|~\*|~)?\s*(\S+)\s*\{([^}]*)\}").unwrap();
    re.captures_iter(conf)
        // Named locations (`@name`) only serve error pages.
        .filter(|c| !c[2].starts_with('@'))
        .map(|c| {
            let body = &c[3];
            let target = if body.contains("return 404") || body.contains("deny all") {
                Route::Refused
            } else {
                let up = Regex::new(r"proxy_pass\s+http://(\w+)")
                    .unwrap()
                    .captures(body)
                    .map(|m| m[1].to_owned())
                    .expect("proxy_pass");
                let host = upstreams.get(&up).unwrap_or_else(|| panic!("upstream {up}"));
                Route::To(
                    APP_SERVICES.into_iter().find(|s| *s == host).unwrap_or_else(|| panic!("unknown host {host}")),
                )
            };
            Location {
                modifier: c.get(1).map(|m| m.as_str().to_owned()).unwrap_or_default(),
                pattern: c[2].to_owned(),
                target,
            }
        })
        .collect()
}

/// nginx's choice: exact, then the longest prefix (final if `^~`), then the first regex, then that prefix.
fn nginx_route(locations: &[Location], path: &str) -> Option<Route> {
    if let Some(l) = locations.iter().find(|l| l.modifier == "=" && l.pattern == path) {
        return Some(l.target.clone());
    }
    let prefix = locations
        .iter()
        .filter(|l| (l.modifier.is_empty() || l.modifier == "^~") && path.starts_with(&l.pattern))
        .max_by_key(|l| l.pattern.len());
    if let Some(p) = prefix.filter(|p| p.modifier == "^~") {
        return Some(p.target.clone());
    }
    for l in locations.iter().filter(|l| l.modifier.starts_with('~')) {
        if Regex::new(&l.pattern).unwrap().is_match(path) {
            return Some(l.target.clone());
        }
    }
    prefix.map(|p| p.target.clone())
}

#[test]
fn the_gateway_routes_as_the_spec_says() {
    let conf = read("deploy/gateway/nginx.conf");
    let locations = nginx_locations(&conf);
    assert!(locations.len() >= 5, "{locations:?}");
    for (path, expected) in expected_routes() {
        assert_eq!(nginx_route(&locations, path), Some(expected), "gateway route of {path}");
    }
    assert!(conf.contains("proxy_set_header Upgrade $http_upgrade"), "websocket upgrade forwarded");
}

/// Variables of nginx that hold the query string.
const QUERY_VARIABLES: [&str; 4] = ["$request_uri", "$args", "$query_string", "$arg_"];

fn assert_path_only(format: &str, what: &str) {
    for var in QUERY_VARIABLES {
        assert!(!format.contains(var), "{what} logs {var}: {format}");
    }
    // `$request` is the whole request line; `$request_method`, `$request_time` are fine.
    assert!(!Regex::new(r"\$request\b").unwrap().is_match(format), "{what} logs $request: {format}");
    assert!(format.contains("$uri"), "{what} logs the path: {format}");
}

#[test]
fn the_gateway_never_logs_query_strings() {
    let conf = read("deploy/gateway/nginx.conf");
    let formats: Vec<String> = Regex::new(r"(?s)log_format\s+(\w+)\s+((?:'[^']*'\s*)+);")
        .unwrap()
        .captures_iter(&conf)
        .map(|c| {
            assert_eq!(&c[1], "path_only");
            c[2].replace(['\'', '\n'], "")
        })
        .collect();
    assert_eq!(formats.len(), 1, "one log format");
    assert_path_only(&formats[0], "the gateway's access log");
    let access: Vec<&str> = conf.lines().map(str::trim).filter(|l| l.starts_with("access_log")).collect();
    assert!(
        !access.is_empty() && access.iter().all(|l| l.ends_with(" path_only;") || l.ends_with(" off;")),
        "{access:?}"
    );
    // nginx adds the request line to request-related error-log messages at every level.
    let error_logs: Vec<&str> = conf.lines().map(str::trim).filter(|l| l.starts_with("error_log")).collect();
    assert!(!error_logs.is_empty() && error_logs.iter().all(|l| l.ends_with(" emerg;")), "{error_logs:?}");
}

#[test]
fn the_gateway_answers_its_own_errors_in_the_error_shape() {
    let conf = read("deploy/gateway/nginx.conf");
    let named: BTreeMap<String, (u16, Value)> =
        Regex::new(r"location\s+@(\w+)\s*\{\s*default_type application/json;\s*return (\d{3}) '([^']*)';")
            .unwrap()
            .captures_iter(&conf)
            .map(|c| (c[1].to_owned(), (c[2].parse().unwrap(), serde_norway::from_str(&c[3]).expect("JSON body"))))
            .collect();
    let pages: BTreeMap<u16, String> = Regex::new(r"error_page\s+(\d{3})\s+@(\w+);")
        .unwrap()
        .captures_iter(&conf)
        .map(|c| (c[1].parse().unwrap(), c[2].to_owned()))
        .collect();
    for (status, code) in
        [(404, "not_found"), (413, "request_entity_too_large"), (502, "bad_gateway"), (504, "gateway_timeout")]
    {
        let location = pages.get(&status).unwrap_or_else(|| panic!("error_page {status}"));
        let (returned, body) = named.get(location).unwrap_or_else(|| panic!("location @{location}"));
        assert_eq!(*returned, status, "@{location}");
        assert_eq!(body["code"], code, "@{location}");
        assert!(body["origin"].is_string() && body["desc"].is_string(), "@{location}");
        assert!(body["details"].is_mapping(), "@{location}");
    }
}

fn k8s_docs() -> Vec<Value> {
    let mut docs = Vec::new();
    let dir = root().join("deploy/k8s");
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            if !v.is_null() {
                docs.push(v);
            }
        }
    }
    docs
}

use serde::Deserialize;

fn kind_named<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter().find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

#[test]
fn kubernetes_manifests_are_complete() {
    let docs = k8s_docs();
    let kustomization: Value = serde_norway::from_str(&read("deploy/k8s/kustomization.yaml")).unwrap();
    for r in kustomization["resources"].as_sequence().unwrap() {
        assert!(root().join("deploy/k8s").join(r.as_str().unwrap()).exists(), "kustomization lists {r:?}");
    }
    for service in ["boxes", "realtime", "auth-bridge"] {
        let dep = kind_named(&docs, "Deployment", service).unwrap_or_else(|| panic!("Deployment {service}"));
        let container = &dep["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz", "{service} readiness");
        assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz", "{service} liveness");
        let mut env: BTreeSet<String> =
            container["env"].as_sequence().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect();
        // A whole Secret as environment: each of its keys is a variable.
        for from in container["envFrom"].as_sequence().into_iter().flatten() {
            let name = from["secretRef"]["name"].as_str().unwrap();
            let secret = kind_named(&docs, "Secret", name).unwrap_or_else(|| panic!("Secret {name}"));
            env.extend(secret["stringData"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_owned()));
        }
        check_settings(service, &env, "deploy/k8s");
        for e in container["env"].as_sequence().unwrap() {
            if let Some(secret) = e["valueFrom"]["secretKeyRef"]["name"].as_str() {
                let s = kind_named(&docs, "Secret", secret).unwrap_or_else(|| panic!("Secret {secret}"));
                let key = e["valueFrom"]["secretKeyRef"]["key"].as_str().unwrap();
                assert!(!s["stringData"][key].is_null(), "Secret {secret} has {key}");
            }
        }
        for v in dep["spec"]["template"]["spec"]["volumes"].as_sequence().unwrap() {
            if let Some(secret) = v["secret"]["secretName"].as_str() {
                assert!(kind_named(&docs, "Secret", secret).is_some(), "Secret {secret}");
            }
            if let Some(cm) = v["configMap"]["name"].as_str() {
                assert!(kind_named(&docs, "ConfigMap", cm).is_some(), "ConfigMap {cm}");
            }
        }
        let svc = kind_named(&docs, "Service", service).unwrap_or_else(|| panic!("Service {service}"));
        assert_eq!(svc["spec"]["selector"]["app"], dep["spec"]["template"]["metadata"]["labels"]["app"]);
    }
    let hpa = kind_named(&docs, "HorizontalPodAutoscaler", "realtime").expect("HPA for realtime");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "realtime");
}

/// ingress-nginx with `use-regex`: exact paths, then regex/prefix paths, longest first.
fn ingress_route(ingress: &Value, path: &str) -> Option<Route> {
    let mut paths: Vec<(String, String, String)> = Vec::new();
    for rule in ingress["spec"]["rules"].as_sequence().unwrap() {
        for p in rule["http"]["paths"].as_sequence().unwrap() {
            paths.push((
                p["path"].as_str().unwrap().to_owned(),
                p["pathType"].as_str().unwrap().to_owned(),
                p["backend"]["service"]["name"].as_str().unwrap().to_owned(),
            ));
        }
    }
    let to = |name: &str| Route::To(APP_SERVICES.into_iter().find(|s| *s == name).unwrap());
    if let Some((_, _, s)) = paths.iter().find(|(p, t, _)| t == "Exact" && p == path) {
        return Some(to(s));
    }
    paths.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.len()));
    paths
        .iter()
        .find(|(p, t, _)| match t.as_str() {
            "Prefix" => path == p || path.starts_with(&format!("{}/", p.trim_end_matches('/'))) || p == "/",
            "ImplementationSpecific" => Regex::new(&format!("^{p}$")).unwrap().is_match(path),
            _ => false,
        })
        .map(|(_, _, s)| to(s))
}

#[test]
fn the_ingress_routes_as_the_spec_says() {
    let docs = k8s_docs();
    let ingress = docs.iter().find(|d| d["kind"] == "Ingress").expect("Ingress");
    for (path, expected) in expected_routes() {
        // The Ingress only reaches public ports; /internal/* lands on boxes' public port, which
        // does not serve it (see the internal-listener test below).
        let expected = if expected == Route::Refused { Route::To("boxes") } else { expected };
        assert_eq!(ingress_route(ingress, path), Some(expected), "ingress route of {path}");
    }
    let annotations = ingress["metadata"]["annotations"].as_mapping().unwrap();
    for key in annotations.keys().filter_map(|k| k.as_str()) {
        assert!(!key.ends_with("-snippet"), "the Ingress relies on no snippet annotation: {key}");
    }
    for rule in ingress["spec"]["rules"].as_sequence().unwrap() {
        for p in rule["http"]["paths"].as_sequence().unwrap() {
            assert_eq!(p["backend"]["service"]["port"]["name"], "http", "public ports only: {p:?}");
        }
    }
}

fn container_env<'a>(dep: &'a Value, name: &str) -> Option<&'a str> {
    let env = dep["spec"]["template"]["spec"]["containers"][0]["env"].as_sequence()?;
    env.iter().find(|e| e["name"] == name).and_then(|e| e["value"].as_str())
}

#[test]
fn the_internal_api_has_its_own_port_service_and_network_policy() {
    let docs = k8s_docs();
    let boxes = kind_named(&docs, "Deployment", "boxes").unwrap();
    let ports = boxes["spec"]["template"]["spec"]["containers"][0]["ports"].as_sequence().unwrap();
    let port_of = |name: &str| ports.iter().find(|p| p["name"] == name).and_then(|p| p["containerPort"].as_u64());
    let internal_port = port_of("internal").expect("boxes has an internal container port");
    assert_ne!(Some(internal_port), port_of("http"));
    let bind = container_env(boxes, "INTERNAL_BIND_ADDR").expect("INTERNAL_BIND_ADDR");
    assert!(bind.ends_with(&format!(":{internal_port}")), "{bind}");

    let public = kind_named(&docs, "Service", "boxes").unwrap();
    let public_ports = public["spec"]["ports"].as_sequence().unwrap();
    assert!(public_ports.iter().all(|p| p["targetPort"] != "internal"), "the public Service hides the internal port");
    let internal = kind_named(&docs, "Service", "boxes-internal").expect("Service boxes-internal");
    assert_eq!(internal["spec"]["selector"]["app"], "boxes");
    let ports = internal["spec"]["ports"].as_sequence().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0]["targetPort"], "internal");
    let service_port = ports[0]["port"].as_u64().unwrap();

    let bridge = kind_named(&docs, "Deployment", "auth-bridge").unwrap();
    assert_eq!(
        container_env(bridge, "BOXES_INTERNAL_URL"),
        Some(format!("http://boxes-internal:{service_port}").as_str())
    );

    // Only auth-bridge pods reach the internal port.
    let policies: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "NetworkPolicy" && d["spec"]["podSelector"]["matchLabels"]["app"] == "boxes")
        .collect();
    assert_eq!(policies.len(), 1, "one NetworkPolicy selects boxes");
    let rules = policies[0]["spec"]["ingress"].as_sequence().unwrap();
    let reaching_internal: Vec<&Value> = rules
        .iter()
        .filter(|r| r["ports"].as_sequence().unwrap().iter().any(|p| p["port"].as_u64() == Some(internal_port)))
        .collect();
    // auth-bridge pods for the internal API, the monitoring namespace for /metrics.
    assert_eq!(reaching_internal.len(), 2, "{rules:?}");
    let from = reaching_internal[0]["from"].as_sequence().expect("the internal port has a `from`");
    assert_eq!(from.len(), 1);
    assert_eq!(from[0]["podSelector"]["matchLabels"]["app"], "auth-bridge");
    assert!(from[0]["namespaceSelector"].is_null() && from[0]["ipBlock"].is_null());
    assert_only_monitoring(reaching_internal[1]);
}

/// A NetworkPolicy rule open to the `monitoring` namespace and nothing else.
fn assert_only_monitoring(rule: &Value) {
    let from = rule["from"].as_sequence().expect("the metrics rule has a `from`");
    assert_eq!(from.len(), 1, "{rule:?}");
    assert_eq!(from[0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"], "monitoring", "{rule:?}");
    assert!(from[0]["podSelector"].is_null() && from[0]["ipBlock"].is_null(), "{rule:?}");
}

#[test]
fn every_service_is_scraped_on_a_port_only_monitoring_reaches() {
    let docs = k8s_docs();
    for (service, port_name) in [("boxes", "internal"), ("realtime", "metrics"), ("auth-bridge", "metrics")] {
        let dep = kind_named(&docs, "Deployment", service).unwrap();
        let ports = dep["spec"]["template"]["spec"]["containers"][0]["ports"].as_sequence().unwrap();
        let port = ports
            .iter()
            .find(|p| p["name"] == port_name)
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("{service} exposes a {port_name} port"));
        let annotations = &dep["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations["prometheus.io/scrape"], "true", "{service}");
        assert_eq!(annotations["prometheus.io/port"], port.to_string().as_str(), "{service}");
        assert_eq!(annotations["prometheus.io/path"], "/metrics", "{service}");
        let bind_var = if service == "boxes" { "INTERNAL_BIND_ADDR" } else { "METRICS_BIND_ADDR" };
        let bind = container_env(dep, bind_var).unwrap_or_else(|| panic!("{service} sets {bind_var}"));
        assert!(bind.ends_with(&format!(":{port}")), "{service}: {bind}");
        // The public Service never carries the metrics port.
        let svc = kind_named(&docs, "Service", service).unwrap();
        assert!(svc["spec"]["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .all(|p| p["targetPort"] != port_name || service == "boxes"));
        // Some policy selects the pods, and every rule that opens the metrics port is the
        // monitoring namespace's (boxes shares its internal port with auth-bridge, checked above).
        let rules: Vec<&Value> = docs
            .iter()
            .filter(|d| d["kind"] == "NetworkPolicy" && d["spec"]["podSelector"]["matchLabels"]["app"] == service)
            .flat_map(|d| d["spec"]["ingress"].as_sequence().unwrap())
            .filter(|r| r["ports"].as_sequence().unwrap().iter().any(|p| p["port"].as_u64() == Some(port)))
            .collect();
        assert!(!rules.is_empty(), "{service}: no NetworkPolicy opens port {port}");
        if service != "boxes" {
            assert_eq!(rules.len(), 1, "{service}: {rules:?}");
            assert_only_monitoring(rules[0]);
        }
    }
}

/// The metric names a PromQL expression selects: identifiers outside label matchers, ranges,
/// strings and `by (...)`, not called as functions.
fn promql_metrics(expr: &str) -> Vec<String> {
    let stripped =
        regex::Regex::new(r#""[^"]*"|\{[^}]*\}|\[[^\]]*\]|\b(by|without)\s*\([^)]*\)"#).unwrap().replace_all(expr, " ");
    regex::Regex::new(r"[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?")
        .unwrap()
        .find_iter(&stripped)
        .map(|m| m.as_str())
        .filter(|t| !t.ends_with('('))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_grafana_dashboard_queries_the_services_families() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/boxes-dashboard.json")).expect("the dashboard is JSON");
    assert!(dashboard["title"].is_string() && dashboard["uid"].is_string());
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut queried = BTreeSet::new();
    for panel in panels {
        assert!(panel["title"].is_string() && panel["gridPos"].is_object(), "{panel}");
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("a PromQL expression");
            for name in promql_metrics(expr) {
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .filter(|f| web_kit::metrics::FAMILY_NAMES.contains(f))
                    .unwrap_or(&name)
                    .to_owned();
                assert!(web_kit::metrics::FAMILY_NAMES.contains(&family.as_str()), "{expr}: no family {name}");
                queried.insert(family);
            }
        }
    }
    for family in web_kit::metrics::FAMILY_NAMES {
        assert!(queried.contains(*family), "the dashboard shows no {family}");
    }
}

#[test]
fn the_ingress_never_logs_query_strings() {
    let docs = k8s_docs();
    let ingress = docs.iter().find(|d| d["kind"] == "Ingress").unwrap();
    assert_eq!(ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/enable-access-log"], "false");
    let text = read("deploy/k8s/ingress-nginx/controller-config.yaml");
    let cm: Value = serde_norway::from_str(&text).unwrap();
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["name"], "ingress-nginx-controller");
    assert_path_only(cm["data"]["log-format-upstream"].as_str().unwrap(), "the controller's access log");
    assert_eq!(cm["data"]["error-log-level"], "emerg");
    let kustomization: Value = serde_norway::from_str(&read("deploy/k8s/ingress-nginx/kustomization.yaml")).unwrap();
    assert_eq!(kustomization["resources"][0], "controller-config.yaml");
}

#[test]
fn examples_carry_no_default_secret() {
    let docs = k8s_docs();
    for secret in docs.iter().filter(|d| d["kind"] == "Secret") {
        for (key, value) in secret["stringData"].as_mapping().unwrap() {
            assert_eq!(value.as_str(), Some(""), "Secret {:?} {key:?} ships a value", secret["metadata"]["name"]);
        }
    }
    let compose: Value = serde_norway::from_str(&read("docker-compose.yml")).unwrap();
    for (service, var, from) in [
        ("boxes", "INTERNAL_API_TOKEN", "INTERNAL_API_TOKEN"),
        ("auth-bridge", "INTERNAL_API_TOKEN", "INTERNAL_API_TOKEN"),
        ("postgres", "POSTGRES_PASSWORD", "POSTGRES_PASSWORD"),
        ("reference-hostapp", "REF_SECRET", "REF_SECRET"),
        ("auth-bridge", "HOSTAPP_SECRET_REF_HOSTAPP", "REF_SECRET"),
    ] {
        let value = compose["services"][service]["environment"][var].as_str().unwrap();
        assert!(value.starts_with(&format!("${{{from}:?")), "compose {service} {var} must be required: {value}");
    }
    // The compose host-app registry takes its secrets from the environment only.
    let registry = read("deploy/hostapps.compose.toml");
    assert!(!registry.contains("hostapp_secret_key"), "deploy/hostapps.compose.toml ships a secret");
    for service in ["boxes", "auth-bridge"] {
        let url = compose["services"][service]["environment"]["DATABASE_URL"].as_str().unwrap();
        assert!(url.contains("${POSTGRES_PASSWORD:?"), "{service} DATABASE_URL: {url}");
    }
    // The Connect secret is optional, and closed (empty) unless the operator sets one.
    assert_eq!(
        compose["services"]["auth-bridge"]["environment"]["BOXO_CONNECT_SECRET_BOXES_MINIAPP"],
        "${BOXO_CONNECT_SECRET:-}"
    );
    // Every host app of the k8s registry has its secret in the environment.
    let k8s_registry = kind_named(&docs, "ConfigMap", "hostapps").unwrap()["data"]["hostapps.toml"].as_str().unwrap();
    let secrets = kind_named(&docs, "Secret", "hostapp-secrets").unwrap();
    for line in k8s_registry.lines().filter_map(|l| l.trim().strip_prefix("client_id = ")) {
        let var = format!("HOSTAPP_SECRET_{}", line.trim_matches('"').to_uppercase().replace(['-', '.', ' '], "_"));
        assert!(!secrets["stringData"][var.as_str()].is_null(), "hostapp-secrets lacks {var}");
    }
    assert_eq!(compose["services"]["auth-bridge"]["environment"]["BOXES_INTERNAL_URL"], "http://boxes:9081");
    assert_eq!(compose["services"]["boxes"]["environment"]["INTERNAL_BIND_ADDR"], "0.0.0.0:9081");
}

/// Encrypted files (issue 18): where blobs go, and uploads let through up to their limit.
#[test]
fn encrypted_files_have_storage_and_room_for_uploads() {
    // Compose: a volume at FILES_DIR by default, MinIO wired by env for the `s3` profile.
    let doc: Value = serde_norway::from_str(&read("docker-compose.yml")).unwrap();
    let boxes = &doc["services"]["boxes"];
    let dir = boxes["environment"]["FILES_DIR"].as_str().expect("FILES_DIR in compose");
    let volumes = format!("{:?}", boxes["volumes"]);
    assert!(volumes.contains(&format!("files:{dir}")), "a volume at FILES_DIR: {volumes}");
    assert!(doc["volumes"].as_mapping().unwrap().contains_key("files"));
    assert_eq!(boxes["environment"]["AWS_ENDPOINT_URL"], "http://minio:9000");
    assert!(boxes["environment"]["FILES_S3_URL"].as_str().is_some_and(|v| v.contains("FILES_S3_URL")));
    let minio = &doc["services"]["minio"];
    assert!(minio["image"].as_str().is_some_and(|i| i.starts_with("minio/minio")), "MinIO in compose");
    assert!(read("Dockerfile").contains(&format!("chown app {dir}")), "the image lets boxes write FILES_DIR");

    // The gateway: the upload route takes 65 MiB, unbuffered, and still goes to boxes.
    let conf = read("deploy/gateway/nginx.conf");
    let upload = Regex::new(r"(?s)location ~ \^/boxes/\[\^/\]\+/encrypted-files\$ \{(.*?)\}").unwrap();
    let block = upload.captures(&conf).expect("an upload location")[1].to_owned();
    assert!(block.contains("client_max_body_size 65m;"), "{block}");
    assert!(block.contains("proxy_request_buffering off;"), "{block}");
    assert!(block.contains("proxy_pass http://boxes;"), "{block}");
    let locations = nginx_locations(&conf);
    let id = "74ee16b5-89be-44f7-bcdd-117f496a90a7";
    for path in
        [format!("/boxes/{id}/encrypted-files"), format!("/encrypted-files/{id}"), format!("/boxes/{id}/used-space")]
    {
        assert_eq!(nginx_route(&locations, &path), Some(Route::To("boxes")), "gateway route of {path}");
    }
    // Everything else keeps the small limit.
    assert!(conf.contains("client_max_body_size 64k;"));

    // Kubernetes: the replicas share an S3-compatible store, and an Ingress lets uploads through.
    let docs = k8s_docs();
    let dep = kind_named(&docs, "Deployment", "boxes").unwrap();
    assert_eq!(container_env(dep, "FILES_S3_URL"), Some("s3://boxes-files"));
    assert_eq!(container_env(dep, "AWS_ENDPOINT_URL"), Some("http://minio:9000"));
    assert!(kind_named(&docs, "StatefulSet", "minio").is_some(), "MinIO for the blobs");
    assert!(kind_named(&docs, "Service", "minio").is_some());
    let files = kind_named(&docs, "Ingress", "encrypted-boxes-files").expect("the upload Ingress");
    let annotations = &files["metadata"]["annotations"];
    assert_eq!(annotations["nginx.ingress.kubernetes.io/proxy-body-size"], "65m");
    assert_eq!(annotations["nginx.ingress.kubernetes.io/proxy-request-buffering"], "off");
    assert_eq!(ingress_route(files, &format!("/boxes/{id}/encrypted-files")), Some(Route::To("boxes")));
    assert_eq!(ingress_route(files, &format!("/boxes/{id}/events")), None, "only the upload route is raised");
}

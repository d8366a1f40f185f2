//! The four binaries started together as a deployment runs them: the reference host app, boxes
//! (with its internal listener), realtime and auth-bridge, sharing one fresh database, a Redis
//! and a key pair; with typed clients of each. More boxes and realtime processes of the same
//! deployment can join it ([`System::start_boxes`], [`System::start_realtime`]).

use std::collections::HashMap;

use boxes_client::body::LoginBody;
use boxes_client::{Boxes, Bridge, Internal, Login};
use test_support::TestKeys;

use crate::{free_port, temp_file, Service, TempFile};

/// The miniapp and host app of the reference host app's static codes.
pub const APP_ID: &str = "boxes-miniapp";
pub const CLIENT_ID: &str = "ref-hostapp";

/// What differs between the systems the tests start.
#[derive(Default)]
pub struct Options<'a> {
    /// The Redis every service uses; the shared test Redis when `None`.
    pub redis_url: Option<&'a str>,
    /// `REDIS_CLUSTER_NODES` of every service: they run against that Redis Cluster instead.
    pub redis_cluster_nodes: Option<&'a str>,
    /// Set for every service.
    pub everywhere: &'a [(&'a str, &'a str)],
    /// Set for boxes only.
    pub boxes: &'a [(&'a str, &'a str)],
    /// Set for realtime only.
    pub realtime: &'a [(&'a str, &'a str)],
    /// Set for auth-bridge only.
    pub bridge: &'a [(&'a str, &'a str)],
    /// Set for the reference host app only.
    pub hostapp: &'a [(&'a str, &'a str)],
    /// TOML lines added to the `ref-hostapp` entry of auth-bridge's registry.
    pub hostapp_entry: &'a str,
    /// auth-bridge's port, when something must know it before it starts; a free one if `None`.
    pub bridge_port: Option<u16>,
}

pub struct System {
    pub hostapp: Service,
    pub boxes: Service,
    pub realtime: Service,
    pub bridge: Service,
    /// `http://…` of boxes' internal listener.
    pub boxes_internal: String,
    pub internal_token: String,
    pub database_url: String,
    pub keys: TestKeys,
    /// What boxes and realtime were started with, for more processes of each.
    boxes_env: HashMap<String, String>,
    realtime_env: HashMap<String, String>,
    _registry: TempFile,
}

impl System {
    pub async fn start() -> System {
        System::start_with(Options::default()).await
    }

    pub async fn start_with(o: Options<'_>) -> System {
        let database_url = test_support::fresh_database().await.expect("fresh database");
        let keys = TestKeys::generate();
        let private = keys.private_file.path().display().to_string();
        let public = keys.public_file.path().display().to_string();
        let internal_token = format!("internal-{}", uuid::Uuid::new_v4().simple());
        let shared_redis = test_support::redis_url();
        let redis = o.redis_url.unwrap_or(&shared_redis);
        let cluster: Vec<(&str, &str)> =
            o.redis_cluster_nodes.map(|n| ("REDIS_CLUSTER_NODES", n)).into_iter().collect();
        let env = |own: &[(&str, &str)], more: &[(&str, &str)]| -> HashMap<String, String> {
            own.iter()
                .chain(more)
                .chain(o.everywhere)
                .chain(&cluster)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };

        let mut hostapp = Service::start(
            "reference-hostapp",
            &env(
                &[
                    ("REF_CLIENT_ID", CLIENT_ID),
                    ("REF_SECRET", "ref-secret"),
                    ("REF_APP_IDS", APP_ID),
                    ("REF_STATIC_CODES", "true"),
                ],
                o.hostapp,
            ),
        )
        .expect("start the host app");
        hostapp.wait_ready("/healthz").await.expect("host app ready");
        let internal_addr = format!("127.0.0.1:{}", free_port());
        let boxes_env = env(
            &[
                ("DATABASE_URL", &database_url),
                ("REDIS_URL", redis),
                ("JWT_PUBLIC_KEY_FILE", &public),
                ("INTERNAL_API_TOKEN", &internal_token),
            ],
            o.boxes,
        );
        let mut boxes = Service::start("boxes", &with_internal_addr(&boxes_env, &internal_addr)).expect("start boxes");
        let realtime_env = env(&[("REDIS_URL", redis), ("JWT_PUBLIC_KEY_FILE", &public)], o.realtime);
        let mut realtime = Service::start("realtime", &realtime_env).expect("start realtime");
        let registry = temp_file(&format!(
            r#"[[hostapp]]
client_id = "{CLIENT_ID}"
hostapp_client_id = "{CLIENT_ID}"
hostapp_secret_key = "ref-secret"
token_prefix = "Token"
get_access_token_url = "{h}/hostapp/get-access-token"
get_user_data_url = "{h}/hostapp/get-user-data"
user_data_method = "GET"
allowed_app_ids = ["{APP_ID}"]
timeout_ms = 5000
{extra}"#,
            h = hostapp.url(),
            extra = o.hostapp_entry,
        ));
        let boxes_internal = format!("http://{internal_addr}");
        let mut bridge = Service::start_on(
            "auth-bridge",
            &env(
                &[
                    ("DATABASE_URL", &database_url),
                    ("REDIS_URL", redis),
                    ("JWT_PRIVATE_KEY_FILE", &private),
                    ("JWT_PUBLIC_KEY_FILE", &public),
                    ("INTERNAL_API_TOKEN", &internal_token),
                    ("BOXES_INTERNAL_URL", &boxes_internal),
                    ("HOSTAPPS_CONFIG", &registry.path().display().to_string()),
                    ("COOKIE_SECURE", "false"),
                ],
                o.bridge,
            ),
            o.bridge_port.unwrap_or_else(free_port),
        )
        .expect("start auth-bridge");
        // boxes and realtime are ready once auth-bridge has loaded the revoked sessions into Redis
        // (`auth:revocations_loaded`), and auth-bridge once boxes answers: wait for all three.
        boxes.wait_ready("/readyz").await.expect("boxes ready");
        realtime.wait_ready("/readyz").await.expect("realtime ready");
        bridge.wait_ready("/readyz").await.expect("auth-bridge ready");
        System {
            hostapp,
            boxes,
            realtime,
            bridge,
            boxes_internal,
            internal_token,
            database_url,
            keys,
            boxes_env,
            realtime_env,
            _registry: registry,
        }
    }

    /// Another boxes process with the first one's settings (database, Redis, keys), on ports of
    /// its own, once ready.
    pub async fn start_boxes(&self) -> Service {
        let internal_addr = format!("127.0.0.1:{}", free_port());
        let mut boxes =
            Service::start("boxes", &with_internal_addr(&self.boxes_env, &internal_addr)).expect("start another boxes");
        boxes.wait_ready("/readyz").await.expect("the other boxes ready");
        boxes
    }

    /// Another realtime process with the first one's settings, on a port of its own, once ready.
    pub async fn start_realtime(&self) -> Service {
        let mut realtime = Service::start("realtime", &self.realtime_env).expect("start another realtime");
        realtime.wait_ready("/readyz").await.expect("the other realtime ready");
        realtime
    }

    /// boxes' public API, anonymous until `.as_user(…)`.
    pub fn boxes_api(&self, http: &reqwest::Client) -> Boxes {
        Boxes::new(http.clone(), &self.boxes.url())
    }

    pub fn internal_api(&self, http: &reqwest::Client) -> Internal {
        Internal::new(http.clone(), &self.boxes_internal, &self.internal_token)
    }

    pub fn bridge_api(&self, http: &reqwest::Client) -> Bridge {
        Bridge::new(http.clone(), &self.bridge.url())
    }

    /// Logs in the host app user `reference` with its static code (`code-<reference>`).
    pub async fn login(&self, http: &reqwest::Client, reference: &str) -> Login {
        self.bridge_api(http).login(&login_body(&format!("code-{reference}"))).await.expect("login")
    }
}

fn with_internal_addr(env: &HashMap<String, String>, addr: &str) -> HashMap<String, String> {
    let mut env = env.clone();
    env.insert("INTERNAL_BIND_ADDR".into(), addr.into());
    env
}

/// A login body for the reference host app's miniapp with `auth_code`.
pub fn login_body(auth_code: &str) -> LoginBody {
    LoginBody { auth_code: auth_code.to_owned(), app_id: APP_ID.to_owned(), client_id: CLIENT_ID.to_owned() }
}

//! The OpenAPI description of a service (issue 19), built from the same table that registers its
//! actix routes, so a route and its description are written side by side. Each handler carries a
//! `#[utoipa::path]` attribute; [`RouteTable::route`] takes the handler and its description, records
//! the (method, path) actix serves, and collects the description. A service's test compares the
//! two sets ([`RouteTable::served`] against [`described`]), so a description written for another
//! path or method than the route it sits beside fails.
//!
//! Every service also serves its document at `GET /openapi.json` and a Swagger UI page at
//! `GET /docs/`, whose files are compiled into the binary: nothing is fetched at run time.

use std::collections::BTreeSet;
use std::sync::Arc;

pub use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, HttpResponse, Responder, Route};
use domain::ErrorBody;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Content, OpenApi, RefOr, Response, Schema};
use utoipa::{PartialSchema, ToSchema};

/// Names of the security schemes in `components.securitySchemes`.
pub const BEARER: &str = "bearer";
pub const COOKIE: &str = "cookie";
pub const CSRF: &str = "csrf";

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials.
    Public,
    /// A session token: `Authorization: Bearer`, or the `accesstoken` cookie with the
    /// `X-CSRF-Token` header (§3.4); answers 401 without one.
    Session,
    /// Only the description is added; the operation's own attribute says what it needs.
    AsDescribed,
}

/// A response every operation of a table may give, whatever its handler does (a middleware's).
#[derive(Debug, Clone, Copy)]
pub struct Common {
    pub status: u16,
    pub description: &'static str,
}

/// The middleware answers of a listener that reads bodies with `web_kit::limits` in front.
pub const LIMITED: &[Common] = &[
    Common { status: 503, description: "A dependency is unavailable or the request ran out of time (§4)." },
    Common {
        status: 504,
        description: "The request ran out of time after its COMMIT was sent: `details.commit = timed_out`.",
    },
];

type Ops = Vec<(String, HttpMethod, Operation)>;

/// Routes and their descriptions, registered together.
pub struct RouteTable {
    resources: Vec<(String, Vec<Route>)>,
    served: BTreeSet<(String, String)>,
    ops: Ops,
    schemas: Vec<(String, RefOr<Schema>)>,
    common: &'static [Common],
    links: Vec<Link>,
}

/// An OpenAPI link: what `from` answers with `status` gives `parameter` of the operations under
/// `prefix` (schemathesis's stateful phase follows them: create a box, then use its id).
struct Link {
    from: &'static str,
    status: &'static str,
    prefix: &'static str,
    parameter: &'static str,
    expression: &'static str,
}

impl RouteTable {
    /// A table whose operations may all also answer `common`.
    pub fn new(common: &'static [Common]) -> Self {
        RouteTable {
            resources: Vec::new(),
            served: BTreeSet::new(),
            ops: Vec::new(),
            schemas: Vec::new(),
            common,
            links: Vec::new(),
        }
    }

    /// Serves `handler` at `method path`, described by `D` (the `#[utoipa::path]` of the handler,
    /// named `__path_<handler>` beside it; the [`route!`](crate::route) macro names it), with the
    /// operation id `name`.
    pub fn route<D, F, Args>(&mut self, name: &str, method: Method, path: &str, access: Access, handler: F) -> &mut Self
    where
        D: utoipa::Path + utoipa::__dev::SchemaReferences,
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add::<D, F, Args>(name, method, path, D::path(), access, handler)
    }

    /// Serves `handler` also at `path`, another spelling of the path `D` describes (a trailing
    /// slash that clients differ on), described there by `D` under the operation id `name`.
    pub fn alias<D, F, Args>(&mut self, name: &str, method: Method, path: &str, access: Access, handler: F) -> &mut Self
    where
        D: utoipa::Path + utoipa::__dev::SchemaReferences,
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.add::<D, F, Args>(name, method, path, path.to_owned(), access, handler)
    }

    fn add<D, F, Args>(
        &mut self,
        name: &str,
        method: Method,
        path: &str,
        described_at: String,
        access: Access,
        handler: F,
    ) -> &mut Self
    where
        D: utoipa::Path + utoipa::__dev::SchemaReferences,
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.served.insert((method.as_str().to_ascii_lowercase(), path.to_owned()));
        let route = web::method(method).to(handler);
        match self.resources.iter_mut().find(|(p, _)| p == path) {
            Some((_, routes)) => routes.push(route),
            None => self.resources.push((path.to_owned(), vec![route])),
        }
        let mut op = D::operation();
        op.operation_id = Some(name.to_owned());
        if access == Access::Session {
            op.security = Some(vec![
                SecurityRequirement::new(BEARER, Vec::<String>::new()),
                SecurityRequirement::new(COOKIE, Vec::<String>::new()).add(CSRF, Vec::<String>::new()),
            ]);
            add_error(&mut op, 401, "No valid session: `details` names the missing or rejected credential.");
            add_error(
                &mut op,
                403,
                "The session may not do this: its ACR is too low (`details.required_acr`), the CSRF token \
                 of a cookie session is missing or wrong (`X-CSRF-Token`), an identity in the path is not \
                 the caller, or a box rule refuses (`details.reason`).",
            );
        }
        for c in self.common {
            add_error(&mut op, c.status, c.description);
        }
        for m in D::methods() {
            self.ops.push((described_at.clone(), m, op.clone()));
        }
        D::schemas(&mut self.schemas);
        self
    }

    /// Links the `status` answer of operation `from` to every operation whose path starts with
    /// `prefix` and has the path parameter `parameter`, which takes the value at `expression`
    /// (e.g. `$response.body#/id`).
    pub fn link(
        &mut self,
        from: &'static str,
        status: &'static str,
        prefix: &'static str,
        parameter: &'static str,
        expression: &'static str,
    ) -> &mut Self {
        self.links.push(Link { from, status, prefix, parameter, expression });
        self
    }

    /// The `(method, path)` pairs actix serves, methods in lower case.
    pub fn served(&self) -> BTreeSet<(String, String)> {
        self.served.clone()
    }

    /// Adds the table's operations and the schemas they use to `base`.
    pub fn document(&self, mut base: OpenApi) -> OpenApi {
        for (path, method, op) in &self.ops {
            let mut op = op.clone();
            self.add_links(&mut op);
            base.paths.add_path_operation(path, vec![method.clone()], op);
        }
        let components = base.components.get_or_insert_with(Default::default);
        for (name, schema) in &self.schemas {
            components.schemas.entry(name.clone()).or_insert_with(|| schema.clone());
        }
        components.schemas.entry(ErrorBody::name().into_owned()).or_insert_with(ErrorBody::schema);
        for (name, schema) in [
            (domain::ErrorCode::name(), domain::ErrorCode::schema()),
            (domain::Origin::name(), domain::Origin::schema()),
        ] {
            components.schemas.entry(name.into_owned()).or_insert(schema);
        }
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(COOKIE, SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("accesstoken"))));
        components.add_security_scheme(CSRF, SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-CSRF-Token"))));
        base
    }

    fn add_links(&self, op: &mut Operation) {
        for l in self.links.iter().filter(|l| op.operation_id.as_deref() == Some(l.from)) {
            let Some(RefOr::T(response)) = op.responses.responses.get_mut(l.status) else { continue };
            let marker = format!("{{{}}}", l.parameter);
            for (path, _, target) in &self.ops {
                let Some(id) = target.operation_id.as_deref() else { continue };
                if path.starts_with(l.prefix) && path.contains(&marker) {
                    let link = utoipa::openapi::link::LinkBuilder::new()
                        .operation_id(id)
                        .parameter(l.parameter, l.expression)
                        .build();
                    response.links.insert(id.to_owned(), RefOr::T(link));
                }
            }
        }
    }

    /// Registers the routes: a known path with another method answers 405, an unknown path 404.
    pub fn configure(self, cfg: &mut web::ServiceConfig) {
        for (path, routes) in self.resources {
            let resource = routes
                .into_iter()
                .fold(web::resource(path), |r, route| r.route(route))
                .default_service(web::to(crate::method_not_allowed));
            cfg.service(resource);
        }
        cfg.default_service(web::to(crate::not_found));
    }

    /// Adds `GET /healthz` (`web_kit::health`).
    pub fn with_healthz(&mut self) -> &mut Self {
        use crate::health::{__path_healthz, healthz};
        self.route::<__path_healthz, _, _>("health_healthz", Method::GET, "/healthz", Access::Public, healthz)
    }

    /// Adds `GET /openapi.json` and the documentation page under `/docs/`.
    pub fn with_docs(&mut self) -> &mut Self {
        self.route::<__path_openapi_json, _, _>(
            "openapi_json",
            Method::GET,
            "/openapi.json",
            Access::Public,
            openapi_json,
        )
        .route::<__path_docs_index, _, _>("docs_index", Method::GET, "/docs/", Access::Public, docs_index)
        .route::<__path_docs_file, _, _>("docs_file", Method::GET, "/docs/{file}", Access::Public, docs_file)
    }
}

/// Adds `status` answered with the §4 body, unless the operation documents it already.
fn add_error(op: &mut Operation, status: u16, description: &str) {
    op.responses.responses.entry(status.to_string()).or_insert_with(|| RefOr::T(error_response(description)));
}

/// A response carrying the §4 error body.
pub fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorBody")))),
        )
        .build()
}

/// The document a service's [`RouteTable::document`] fills in: its title and description, and
/// the workspace's version.
pub fn base(title: &str, description: &str) -> utoipa::openapi::OpenApi {
    utoipa::openapi::OpenApiBuilder::new()
        .info(
            utoipa::openapi::InfoBuilder::new()
                .title(title)
                .description(Some(description))
                .version(env!("CARGO_PKG_VERSION")),
        )
        .build()
}

/// The `(method, path)` pairs a document describes, methods in lower case.
pub fn described(doc: &OpenApi) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        let ops = [
            ("get", &item.get),
            ("put", &item.put),
            ("post", &item.post),
            ("delete", &item.delete),
            ("options", &item.options),
            ("head", &item.head),
            ("patch", &item.patch),
            ("trace", &item.trace),
        ];
        for (m, op) in ops {
            if op.is_some() {
                out.insert((m.to_owned(), path.clone()));
            }
        }
    }
    out
}

/// The serialised document, shared by the workers.
#[derive(Clone)]
pub struct ApiJson(pub Arc<str>);

impl ApiJson {
    pub fn new(doc: &OpenApi) -> Self {
        ApiJson(to_json(doc).to_string().into())
    }
}

/// The document as JSON. utoipa 5 writes a link's fields in snake case (`operation_id`); OpenAPI
/// spells them in camel case, so they are renamed here.
pub fn to_json(doc: &OpenApi) -> serde_json::Value {
    let mut v = serde_json::to_value(doc).unwrap_or_default();
    if let Some(paths) = v.get_mut("paths").and_then(|p| p.as_object_mut()) {
        let ops = paths.values_mut().filter_map(|item| item.as_object_mut()).flat_map(|item| item.values_mut());
        let responses = ops.filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()));
        for response in responses.flat_map(|r| r.values_mut()) {
            let links = response.get_mut("links").and_then(|l| l.as_object_mut());
            for link in links.into_iter().flat_map(|l| l.values_mut()).filter_map(|l| l.as_object_mut()) {
                for (from, to) in [
                    ("operation_id", "operationId"),
                    ("operation_ref", "operationRef"),
                    ("request_body", "requestBody"),
                ] {
                    if let Some(value) = link.remove(from) {
                        link.insert(to.to_owned(), value);
                    }
                }
            }
        }
    }
    v
}

/// Registers `handler`, described by the `#[utoipa::path]` beside it, in a [`RouteTable`]:
/// `route!(table, GET "/boxes/{id}", Session, boxes::get)`.
#[macro_export]
macro_rules! route {
    ($table:expr, $method:ident $path:literal, $access:ident, $module:ident :: $handler:ident, alias $name:literal) => {
        $crate::apidoc::paste! {
            $table.alias::<$module::[<__path_ $handler>], _, _>(
                $name,
                $crate::apidoc::Method::$method,
                $path,
                $crate::apidoc::Access::$access,
                $module::$handler,
            )
        }
    };
    ($table:expr, $method:ident $path:literal, $access:ident, $module:ident :: $handler:ident) => {
        $crate::apidoc::paste! {
            $table.route::<$module::[<__path_ $handler>], _, _>(
                concat!(stringify!($module), "_", stringify!($handler)),
                $crate::apidoc::Method::$method,
                $path,
                $crate::apidoc::Access::$access,
                $module::$handler,
            )
        }
    };
}

#[doc(hidden)]
pub use pastey::paste;

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "documentation",
    responses((status = 200, description = "The OpenAPI 3.1 description of this service.", content_type = "application/json", body = Object)))]
pub async fn openapi_json(doc: web::Data<ApiJson>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(doc.0.to_string())
}

const INDEX_HTML: &str = include_str!("../assets/swagger-ui/index.html");
const INIT_JS: &str = include_str!("../assets/swagger-ui/init.js");
const BUNDLE_JS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js");
const CSS: &[u8] = include_bytes!("../assets/swagger-ui/swagger-ui.css");

/// `GET /docs/`: the documentation page (Swagger UI, reading `/openapi.json`).
#[utoipa::path(get, path = "/docs/", tag = "documentation",
    responses((status = 200, description = "The documentation page.", content_type = "text/html", body = String)))]
pub async fn docs_index() -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(INDEX_HTML)
}

/// `GET /docs/{file}`: the page's script and style sheet.
#[utoipa::path(get, path = "/docs/{file}", tag = "documentation",
    params(("file" = String, Path, description = "One of the page's files: `swagger-ui-bundle.js`, `swagger-ui.css`, `init.js`.")),
    responses(
        (status = 200, description = "The file.", content((String = "application/javascript"), (String = "text/css"))),
        (status = 404, description = "No such file.", body = ErrorBody),
    ))]
pub async fn docs_file(file: web::Path<String>) -> HttpResponse {
    let (body, kind): (&'static [u8], &str) = match file.as_str() {
        "swagger-ui-bundle.js" => (BUNDLE_JS, "application/javascript"),
        "init.js" => (INIT_JS.as_bytes(), "application/javascript"),
        "swagger-ui.css" => (CSS, "text/css"),
        _ => return HttpResponse::NotFound().json(ErrorBody::route_not_found()),
    };
    HttpResponse::Ok().content_type(kind).insert_header(("Cache-Control", "public, max-age=3600")).body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    mod handlers {
        use actix_web::HttpResponse;

        #[utoipa::path(get, path = "/things/{id}", responses((status = 200, description = "A thing.")))]
        pub async fn thing() -> HttpResponse {
            HttpResponse::Ok().finish()
        }
    }

    #[test]
    fn a_description_of_another_path_or_method_is_caught() {
        let mut right = RouteTable::new(&[]);
        crate::route!(right, GET "/things/{id}", Public, handlers::thing);
        assert_eq!(right.served(), described(&right.document(OpenApi::default())));

        let mut wrong_path = RouteTable::new(&[]);
        crate::route!(wrong_path, GET "/thing/{id}", Public, handlers::thing);
        assert_ne!(wrong_path.served(), described(&wrong_path.document(OpenApi::default())));

        let mut wrong_method = RouteTable::new(&[]);
        crate::route!(wrong_method, DELETE "/things/{id}", Public, handlers::thing);
        assert_ne!(wrong_method.served(), described(&wrong_method.document(OpenApi::default())));
    }

    #[test]
    fn session_operations_document_their_credentials_and_errors() {
        let mut t = RouteTable::new(LIMITED);
        crate::route!(t, GET "/things/{id}", Session, handlers::thing);
        let doc = to_json(&t.document(OpenApi::default()));
        let op = &doc["paths"]["/things/{id}"]["get"];
        for status in ["200", "401", "403", "503", "504"] {
            assert!(op["responses"].get(status).is_some(), "{status}");
        }
        assert_eq!(op["security"][0], serde_json::json!({"bearer": []}));
        assert_eq!(op["security"][1], serde_json::json!({"cookie": [], "csrf": []}));
        assert_eq!(doc["components"]["securitySchemes"]["cookie"]["name"], "accesstoken");
        assert_eq!(doc["components"]["securitySchemes"]["csrf"]["name"], "X-CSRF-Token");
    }
}

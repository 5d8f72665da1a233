//! Open311 GeoReport v2 on the app channel, under `/open311/v2/`: discovery, the service list and definitions
//! generated from the province's categories, `POST requests` (a petition of the `app` channel, through the same
//! `Intake` as the app), `GET requests` / `requests/{id}` / `tokens/{token}` from the timeline projection, in XML
//! and JSON, with the spec's errors (`errors/error{code, description}`). docs/channels/open311.md says how to
//! point a client at it and where we deviate.
//!
//! It reads the projection, so it is served by the process that has it: `hotline up` and `hotline serve api`.

pub mod config;
pub mod doc;
pub mod form;
pub mod fuzz;
pub mod requests;
pub mod services;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use hotline_channel::http::MAX_BODY_BYTES;
use hotline_channel::{AccessCodes, Intake, IntakeError};
use hotline_domain::Reference;
use hotline_domain::province::Province;
use hotline_projections::{PetitionQuery, PetitionRow, TimelineReader};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

pub use config::{ConfigError, KEYS, Open311Config};
use doc::{Doc, Format, Node};
use form::{FieldError, Form, ServiceRequestForm};

/// Where the API lives.
pub const PREFIX: &str = "/open311/v2";
/// The spec's longest window and largest default volume for `GET requests`.
pub const MAX_DAYS: i64 = 90;
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Most ids one `service_request_id` list may name.
const MAX_IDS: usize = 1000;
/// Longest accepted `Idempotency-Key`.
const MAX_KEY_LEN: usize = 200;
/// When this implementation's document formats last changed (discovery's `changeset`).
const CHANGESET: &str = "2026-11-28T00:00:00Z";
const SPECIFICATION: &str = "http://wiki.open311.org/GeoReport_v2";

/// The Open311 server: what it reads and where it files petitions. Cheap to clone.
#[derive(Clone)]
pub struct Open311 {
    config: Arc<Open311Config>,
    intake: Intake,
    reader: TimelineReader,
    province: Arc<Province>,
    codes: AccessCodes,
}

impl Open311 {
    pub fn new(config: Open311Config, intake: Intake, reader: TimelineReader, province: Arc<Province>, codes: AccessCodes) -> Open311 {
        if config.api_keys.is_empty() {
            tracing::warn!("no [app] open311_api_keys: Open311 clients can read but not file requests");
        }
        Open311 { config: Arc::new(config), intake, reader, province, codes }
    }

    /// The routes under `/open311/v2/`; everything below the prefix answers in the Open311 error format.
    pub fn routes(self) -> Router {
        Router::new()
            .route(&format!("{PREFIX}/{{file}}"), get(get_top).post(post_top).fallback(method_not_allowed))
            .route(&format!("{PREFIX}/{{kind}}/{{file}}"), get(get_item).fallback(method_not_allowed))
            .route(&format!("{PREFIX}/{{kind}}/{{file}}/{{*rest}}"), any(not_found))
            .route(PREFIX, any(not_found))
            .route(&format!("{PREFIX}/"), any(not_found))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self)
    }
}

/// An error answer: the spec's list of `{code, description}`, in the format the client asked for.
#[derive(Debug)]
pub struct Open311Error {
    pub status: StatusCode,
    pub format: Format,
    pub errors: Vec<String>,
}

impl Open311Error {
    fn new(status: StatusCode, format: Format, description: impl Into<String>) -> Open311Error {
        Open311Error { status, format, errors: vec![description.into()] }
    }

    fn bad_request(format: Format, description: impl Into<String>) -> Open311Error {
        Open311Error::new(StatusCode::BAD_REQUEST, format, description)
    }

    fn not_found(format: Format, description: impl Into<String>) -> Open311Error {
        Open311Error::new(StatusCode::NOT_FOUND, format, description)
    }

    fn fields(format: Format, errors: Vec<FieldError>) -> Open311Error {
        Open311Error { status: StatusCode::BAD_REQUEST, format, errors: errors.into_iter().map(|e| e.message).collect() }
    }

    /// A 500 whose detail is logged, never shown.
    fn internal(format: Format, detail: impl std::fmt::Display) -> Open311Error {
        tracing::error!(error = %detail, "open311: internal error");
        Open311Error::new(StatusCode::INTERNAL_SERVER_ERROR, format, "internal error")
    }

    pub fn doc(&self) -> Doc {
        let code = self.status.as_u16();
        let errors = self
            .errors
            .iter()
            .map(|d| Node::Fields(vec![("code", Node::number(code)), ("description", Node::text(d))]))
            .collect();
        Doc { root: "errors", body: Node::List("error", errors) }
    }
}

impl IntoResponse for Open311Error {
    fn into_response(self) -> Response {
        let mut response = (self.status, document(&self.doc(), self.format)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A rendered document with its content type.
fn document(doc: &Doc, format: Format) -> Response {
    ([(header::CONTENT_TYPE, format.content_type())], doc.render(format)).into_response()
}

/// The format the path asks for; XML (the required format) when it names none.
fn format_of(uri: &Uri) -> Format {
    if uri.path().ends_with(".json") { Format::Json } else { Format::Xml }
}

fn split(file: &str) -> Result<(&str, Format), Open311Error> {
    Format::split(file).ok_or_else(|| {
        Open311Error::not_found(Format::Xml, format!("`{file}` is not a resource here: add .xml or .json"))
    })
}

/// A query string, strictly decoded.
fn query(raw: Option<&str>, format: Format) -> Result<Form, Open311Error> {
    form::parse(raw.unwrap_or_default().as_bytes()).map_err(|e| Open311Error::bad_request(format, format!("query string: {e}")))
}

impl Open311 {
    /// One endpoint serves one jurisdiction: another `jurisdiction_id` than the configured one is not found.
    fn check_jurisdiction(&self, given: Option<&str>, format: Format) -> Result<(), Open311Error> {
        match (&self.config.jurisdiction_id, given) {
            (Some(ours), Some(given)) if !given.eq_ignore_ascii_case(ours) => {
                Err(Open311Error::not_found(format, format!("jurisdiction_id `{given}` not found; this endpoint serves `{ours}`")))
            }
            _ => Ok(()),
        }
    }
}

async fn not_found(uri: Uri) -> Open311Error {
    Open311Error::not_found(format_of(&uri), format!("{} is not an Open311 resource", uri.path()))
}

async fn method_not_allowed(uri: Uri) -> Open311Error {
    Open311Error::new(StatusCode::METHOD_NOT_ALLOWED, format_of(&uri), "this resource does not take that method")
}

/// `GET discovery|services|requests.{fmt}`.
async fn get_top(
    State(api): State<Open311>,
    Path(file): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Open311Error> {
    let (name, format) = split(&file)?;
    let q = query(raw.as_deref(), format)?;
    let jurisdiction = q.single("jurisdiction_id").map_err(|e| Open311Error::bad_request(format, e.message))?;
    api.check_jurisdiction(jurisdiction, format)?;
    let doc = match name {
        "discovery" => discovery(&api, &headers),
        "services" => services::list(&api.province),
        "requests" => list_requests(&api, &q, format).await?,
        "tokens" => return Err(Open311Error::bad_request(format, "a token is needed: tokens/{token}")),
        _ => return Err(Open311Error::not_found(format, format!("no resource `{name}`"))),
    };
    Ok(document(&doc, format))
}

/// `GET services/{code}`, `requests/{id}`, `tokens/{token}`.
async fn get_item(
    State(api): State<Open311>,
    Path((kind, file)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Open311Error> {
    let (id, format) = split(&file)?;
    let q = query(raw.as_deref(), format)?;
    let jurisdiction = q.single("jurisdiction_id").map_err(|e| Open311Error::bad_request(format, e.message))?;
    api.check_jurisdiction(jurisdiction, format)?;
    let doc = match kind.as_str() {
        "services" => services::definition(&api.province, id)
            .ok_or_else(|| Open311Error::not_found(format, format!("service_code `{id}` not found")))?,
        "requests" => one_request(&api, id, format).await?,
        "tokens" => token(&api, id, format).await?,
        _ => return Err(Open311Error::not_found(format, format!("no resource `{kind}`"))),
    };
    Ok(document(&doc, format))
}

/// `POST requests.{fmt}`; the other top-level resources only read.
async fn post_top(
    State(api): State<Open311>,
    Path(file): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Open311Error> {
    let (name, format) = split(&file)?;
    match name {
        "requests" => create(&api, &headers, body, format).await,
        "discovery" | "services" => {
            Err(Open311Error::new(StatusCode::METHOD_NOT_ALLOWED, format, "this resource does not take that method"))
        }
        _ => Err(Open311Error::not_found(format, format!("no resource `{name}`"))),
    }
}

fn discovery(api: &Open311, headers: &HeaderMap) -> Doc {
    let url = api.config.base_url.clone().unwrap_or_else(|| {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).filter(|h| {
            !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        });
        let scheme = match headers.get("x-forwarded-proto").and_then(|h| h.to_str().ok()) {
            Some("https") => "https",
            _ => "http",
        };
        format!("{scheme}://{}{PREFIX}", host.unwrap_or("localhost"))
    });
    let p = &api.province;
    let contact = api.config.contact.clone().unwrap_or_else(|| format!("Đường dây nóng {} tỉnh {}", p.hotline, p.name));
    Doc {
        root: "discovery",
        body: Node::Fields(vec![
            ("changeset", Node::text(CHANGESET)),
            ("contact", Node::text(contact.clone())),
            ("key_service", Node::text(format!("api_key cho ứng dụng gửi phản ánh: liên hệ {contact}"))),
            (
                "endpoints",
                Node::List(
                    "endpoint",
                    vec![Node::Fields(vec![
                        ("specification", Node::text(SPECIFICATION)),
                        ("url", Node::text(url)),
                        ("changeset", Node::text(CHANGESET)),
                        ("type", Node::text("production")),
                        (
                            "formats",
                            Node::List("format", vec![Node::text("text/xml"), Node::text("application/json")]),
                        ),
                    ])],
                ),
            ),
        ]),
    }
}

/// The filters of `GET requests`, checked.
fn petition_query(api: &Open311, q: &Form, format: Format, now: OffsetDateTime) -> Result<PetitionQuery, Open311Error> {
    let bad = |m: String| Open311Error::bad_request(format, m);
    let single = |name: &str| q.single(name).map_err(|e| bad(e.message));
    let ids = q.list("service_request_id");
    if ids.len() > MAX_IDS {
        return Err(bad(format!("at most {MAX_IDS} service_request_id at once")));
    }
    if !ids.is_empty() {
        // "This overrides all other arguments." A malformed id matches nothing, like an unknown one.
        let references = ids.iter().filter_map(|id| Reference::parse(id).ok()).map(|r| r.as_str().to_owned()).collect::<Vec<_>>();
        return Ok(PetitionQuery { limit: MAX_IDS as u32, references: if references.is_empty() { vec![String::new()] } else { references }, ..Default::default() });
    }
    let categories = q.list("service_code");
    for code in &categories {
        if api.province.category(code).is_none() {
            return Err(bad(format!("service_code `{code}` is not a service here (GET services lists them)")));
        }
    }
    let date = |name: &str| -> Result<Option<OffsetDateTime>, Open311Error> {
        single(name)?
            .map(|v| {
                services::parse_datetime(v).ok_or_else(|| {
                    bad(format!("{name} must be a W3C datetime with its time zone, e.g. 2010-01-01T00:00:00Z"))
                })
            })
            .transpose()
    };
    let window = Duration::days(MAX_DAYS);
    let (from, to) = match (date("start_date")?, date("end_date")?) {
        (Some(from), Some(to)) if to < from => return Err(bad("end_date is before start_date".into())),
        (Some(from), Some(to)) if to - from > window => {
            return Err(bad(format!("start_date and end_date may not span more than {MAX_DAYS} days")));
        }
        (Some(from), Some(to)) => (from, Some(to)),
        (Some(from), None) => (from, Some(from + window)),
        (None, Some(to)) => (to - window, Some(to)),
        // The most recent 90 days: no upper bound, so a request filed a moment ago is there.
        (None, None) => (now - window, None),
    };
    let (mut open, mut closed) = (false, false);
    for status in q.list("status") {
        match status.as_str() {
            "open" => open = true,
            "closed" => closed = true,
            other => return Err(bad(format!("status is open or closed, not `{other}`"))),
        }
    }
    let open = match (open, closed) {
        (true, false) => Some(true),
        (false, true) => Some(false),
        _ => None,
    };
    let number = |name: &str, default: u32, max: u32| -> Result<u32, Open311Error> {
        match single(name)? {
            None => Ok(default),
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| bad(format!("{name} must be a whole number from 1 to {max}"))),
        }
    };
    let page_size = number("page_size", MAX_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let page = number("page", 1, 1_000_000)?;
    Ok(PetitionQuery {
        references: Vec::new(),
        categories,
        received_from: Some(from),
        received_to: to,
        open,
        limit: page_size,
        offset: u64::from(page - 1) * u64::from(page_size),
    })
}

async fn list_requests(api: &Open311, q: &Form, format: Format) -> Result<Doc, Open311Error> {
    let query = petition_query(api, q, format, OffsetDateTime::now_utc())?;
    let rows = api.reader.petitions(query).await.map_err(|e| Open311Error::internal(format, e))?;
    requests_doc(api, &rows, format).await
}

async fn one_request(api: &Open311, id: &str, format: Format) -> Result<Doc, Open311Error> {
    let missing = || Open311Error::not_found(format, format!("service_request_id `{id}` not found"));
    let reference = Reference::parse(id).map_err(|_| missing())?;
    let query = PetitionQuery { references: vec![reference.as_str().to_owned()], limit: 1, ..Default::default() };
    let rows = api.reader.petitions(query).await.map_err(|e| Open311Error::internal(format, e))?;
    if rows.is_empty() {
        return Err(missing());
    }
    requests_doc(api, &rows, format).await
}

async fn requests_doc(api: &Open311, rows: &[PetitionRow], format: Format) -> Result<Doc, Open311Error> {
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        // A duplicate names the petition that carries the work (rare: one lookup each).
        let original = match row.ticket.duplicate_of {
            Some(id) => api.reader.ticket(id).await.map_err(|e| Open311Error::internal(format, e))?.map(|t| t.reference),
            None => None,
        };
        items.push(requests::request_node(&api.province, &row.ticket, row.petition.as_ref(), original.as_deref()));
    }
    Ok(Doc { root: "service_requests", body: Node::List("request", items) })
}

/// A token is a ticket id: it resolves to the ticket's reference once the projection has the ticket.
async fn token(api: &Open311, token: &str, format: Format) -> Result<Doc, Open311Error> {
    let missing = || Open311Error::not_found(format, format!("token `{token}` not found"));
    let id: Uuid = token.parse().map_err(|_| missing())?;
    let ticket = api.reader.ticket(id).await.map_err(|e| Open311Error::internal(format, e))?.ok_or_else(missing)?;
    Ok(Doc {
        root: "service_requests",
        body: Node::List(
            "request",
            vec![Node::Fields(vec![
                ("service_request_id", Node::text(ticket.reference)),
                ("token", Node::text(token)),
            ])],
        ),
    })
}

/// `POST requests`: checks the key, the fields and the attributes, files the petition, and answers with its
/// reference only once it is stored.
async fn create(
    api: &Open311,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    format: Format,
) -> Result<Response, Open311Error> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Open311Error::new(StatusCode::PAYLOAD_TOO_LARGE, format, format!("the body is larger than {} KiB", MAX_BODY_BYTES / 1024))
        } else {
            Open311Error::bad_request(format, e.body_text())
        }
    })?;
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let media = content_type.to_str().unwrap_or_default().split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if media != "application/x-www-form-urlencoded" {
            return Err(Open311Error::bad_request(format, "the body must be application/x-www-form-urlencoded"));
        }
    }
    let form = form::parse(&body).map_err(|e| Open311Error::bad_request(format, format!("body: {e}")))?;
    // The key first: without a valid one nothing else is looked at.
    let client = match form.single("api_key") {
        Ok(Some(key)) => api.config.api_keys.client(key),
        _ => None,
    }
    .ok_or_else(|| Open311Error::new(StatusCode::FORBIDDEN, format, "a valid api_key is required to file a request"))?;
    let jurisdiction = form.single("jurisdiction_id").map_err(|e| Open311Error::bad_request(format, e.message))?;
    api.check_jurisdiction(jurisdiction, format)?;
    let key = idempotency_key(headers).map_err(|m| Open311Error::bad_request(format, m))?;
    let request = ServiceRequestForm::from_form(&form).map_err(|e| Open311Error::fields(format, e))?;
    let code = request.service_code.as_deref().ok_or_else(|| Open311Error::bad_request(format, "service_code is required"))?;
    let category = api
        .province
        .category(code)
        .ok_or_else(|| Open311Error::not_found(format, format!("service_code `{code}` not found")))?;
    let mut errors = Vec::new();
    if !request.has_location() {
        errors.push(FieldError::new("lat", "a location is required: lat and long, address_string, or address_id"));
    }
    // Our addressing system is the province's areas (GET services/{code} lists them).
    if let Some(id) = &request.address_id
        && api.province.area(id).is_none()
    {
        let known: Vec<&str> = api.province.areas().iter().map(|a| a.code.as_str()).collect();
        errors.push(FieldError::new("address_id", format!("address_id `{id}` is not an area code: {}", known.join(", "))));
    }
    let answers = match services::check(&api.province, category, &request.attributes) {
        Ok(answers) => answers,
        Err(e) => {
            errors.extend(e);
            services::Answers::default()
        }
    };
    if let (Some(a), Some(b)) = (&answers.area, &request.address_id)
        && a != b
    {
        errors.push(FieldError::new("address_id", format!("address_id `{b}` and attribute[area] `{a}` disagree")));
    }
    if !errors.is_empty() {
        return Err(Open311Error::fields(format, errors));
    }
    let area = answers.area.clone().or_else(|| request.address_id.clone());
    let channel_ref = match &key {
        Some(key) => format!("{}{client}:key:{key}", requests::REF_PREFIX),
        None => format!("{}{client}:{}", requests::REF_PREFIX, Uuid::now_v7()),
    };
    let petition = requests::petition(&request, &category.code, &category.name_vi, &answers, area, channel_ref);
    let accepted = api.intake.submit(petition).await.map_err(|e| intake_error(e, format))?;
    tracing::info!(%client, ticket = %accepted.ticket_id, reference = %accepted.reference, duplicate = accepted.duplicate, "open311 request filed");
    let notice = format!(
        "Đã tiếp nhận phản ánh {}. Mã tra cứu: {} (xem và trả lời câu hỏi trên ứng dụng của đường dây nóng {}). {}",
        accepted.reference,
        api.codes.code_for(accepted.ticket_id),
        api.province.hotline,
        services::notice(&api.province, category)
    );
    let doc = Doc {
        root: "service_requests",
        body: Node::List(
            "request",
            vec![Node::Fields(vec![
                ("service_request_id", Node::text(accepted.reference.as_str())),
                ("service_notice", Node::text(notice)),
                // We keep no accounts: nothing to identify.
                ("account_id", Node::Null),
            ])],
        ),
    };
    Ok(document(&doc, format))
}

fn intake_error(e: IntakeError, format: Format) -> Open311Error {
    match e {
        IntakeError::Invalid { message, .. } => Open311Error::bad_request(format, message),
        IntakeError::KeyReused => Open311Error::bad_request(format, e.to_string()),
        IntakeError::Unavailable(detail) => {
            tracing::warn!(error = %detail, "open311: answering 503");
            Open311Error::new(StatusCode::SERVICE_UNAVAILABLE, format, "the request could not be stored now; nothing was stored, retry later")
        }
        IntakeError::OutcomeUnknown(detail) => {
            tracing::warn!(error = %detail, "open311: answering 503, outcome unknown");
            Open311Error::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format,
                "the request was sent but not confirmed in time, so it may have been stored; retry with the same \
                 Idempotency-Key header to get its service_request_id without filing it twice",
            )
        }
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, String> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let invalid = || format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters");
    let key = value.to_str().map_err(|_| invalid())?.trim();
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid());
    }
    Ok(Some(key.to_owned()))
}

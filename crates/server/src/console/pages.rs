//! The console's pages: each handler extracts, calls one `keyward_core` operation, and renders
//! a template (`templates/console/`).

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use keyward_core::console::Resumed;
use keyward_core::keys::{self, KeyExpiry, KeyPatch, KeyTenant, NewKey, Reach};
use keyward_core::{audit, stats, tenants, users};
use keyward_domain::ratelimit::RateLimitScope;
use keyward_domain::{ApiKey, KeyStatus, Patch, Role};
use keyward_store::{AuditQuery, Cursor, KeyQuery};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::chart::{self, Chart};
use super::{ConsoleError, PageId, PageQuery, Signed, SignedForm};
use crate::app::AppState;
use crate::error::ApiError;
use crate::extract::from_urlencoded;

type Page = Result<Response, ConsoleError>;

/// Keys per page of a listing.
const KEYS_PER_PAGE: u32 = 50;

fn html(page: &impl Template) -> Page {
    Ok(Html(page.render()?).into_response())
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A form's date field (`YYYY-MM-DD`, as `<input type="date">` sends it), as the start of that
/// day in UTC.
fn date_field(field: &str, text: &str) -> Result<OffsetDateTime, ApiError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text.trim(), &format)
        .map(|day| day.midnight().assume_utc())
        .map_err(|_| ApiError::invalid_field(field, "a date, YYYY-MM-DD"))
}

/// A time as people read it in a table: to the minute, in UTC.
fn when(t: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| keyward_core::keys::rfc3339(t))
}

fn maybe(t: Option<OffsetDateTime>) -> String {
    t.map_or_else(|| "—".to_owned(), when)
}

/// What every signed-in page shows around its content.
pub struct Nav {
    pub email: String,
    pub csrf: String,
    pub admin: bool,
    pub tenant_admin: bool,
}

impl Nav {
    fn of(resumed: &Resumed) -> Self {
        let role = resumed.caller.principal.role;
        Self {
            email: resumed.email.clone(),
            csrf: resumed.csrf.clone(),
            admin: role == Role::Admin,
            tenant_admin: role == Role::TenantAdmin,
        }
    }
}

#[derive(Template)]
#[template(path = "console/error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

pub async fn home(signed: Result<Signed, ConsoleError>) -> Response {
    match signed {
        Ok(_) => see_other("/keys"),
        Err(_) => see_other("/sign-in"),
    }
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage<'a> {
    error: Option<&'a str>,
    email: &'a str,
}

pub async fn sign_in_page(signed: Result<Signed, ConsoleError>) -> Page {
    if signed.is_ok() {
        return Ok(see_other("/keys"));
    }
    html(&SignInPage {
        error: None,
        email: "",
    })
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

pub async fn sign_in(
    State(state): State<AppState>,
    parts: axum::http::request::Parts,
    body: Bytes,
) -> Page {
    if !super::same_origin(&parts) {
        return Err(ConsoleError::Csrf);
    }
    let form: SignInForm = from_urlencoded(&body, "form")?;
    let password: SecretString = form.password.into();
    let meta = crate::auth::meta_of(&parts);
    match keyward_core::console::sign_in(&state, &meta, &form.email, password).await {
        Ok(signed_in) => {
            // The session this browser had (if any) is replaced, not left alive beside it.
            if let Some(old) = super::session_token(&parts, state.https()) {
                keyward_core::console::discard(&state, &old).await?;
            }
            let mut response = see_other("/keys");
            let cookie = session_cookie(
                &state,
                signed_in.token.expose_secret(),
                state.settings.console_lifetime,
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            Ok(response)
        }
        Err(keyward_core::Error::Unauthenticated(_) | keyward_core::Error::Invalid { .. }) => {
            let page = SignInPage {
                error: Some("Wrong email or password."),
                email: &form.email,
            };
            Ok((StatusCode::UNAUTHORIZED, Html(page.render()?)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// The session cookie: `HttpOnly`, `SameSite=Strict`, `Path=/`; behind HTTPS `Secure` with the
/// `__Host-` prefix. An empty value with no lifetime removes it.
fn session_cookie(state: &AppState, value: &str, lifetime: time::Duration) -> String {
    let https = state.https();
    let name = if https {
        super::SECURE_SESSION_COOKIE
    } else {
        super::SESSION_COOKIE
    };
    cookie::Cookie::build((name, value))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .secure(https)
        .max_age(lifetime)
        .build()
        .to_string()
}

#[derive(Deserialize)]
pub struct Nothing {}

pub async fn sign_out(State(state): State<AppState>, form: SignedForm<Nothing>) -> Page {
    let signed = form.signed;
    keyward_core::console::sign_out(&state, &signed.token, &signed.resumed).await?;
    Ok(signed_out(&state))
}

/// To the sign-in page, the browser's session cookie cleared.
fn signed_out(state: &AppState) -> Response {
    let mut response = see_other("/sign-in");
    let cookie = session_cookie(state, "", time::Duration::ZERO);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

/// One of the viewer's sessions as a row.
pub struct SessionRow {
    pub id: Uuid,
    pub kind: &'static str,
    pub created: String,
    pub last_seen: String,
    pub expires: String,
    pub source_ip: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "console/sessions.html")]
struct SessionsPage {
    nav: Nav,
    rows: Vec<SessionRow>,
}

/// The viewer's live sessions, console and API, as `GET /api/v1/users/me/sessions` lists them.
pub async fn sessions(State(state): State<AppState>, signed: Signed) -> Page {
    let current = keyward_core::console::session_id(&signed.token);
    let listed = users::sessions(&state, &signed.resumed.caller, Some(current)).await?;
    html(&SessionsPage {
        nav: Nav::of(&signed.resumed),
        rows: listed
            .into_iter()
            .map(|s| SessionRow {
                id: s.id,
                kind: s.kind.as_str(),
                created: when(s.created_at),
                last_seen: maybe(s.last_seen_at),
                expires: when(s.expires_at),
                source_ip: s.source_ip.unwrap_or_else(|| "—".to_owned()),
                current: s.current,
            })
            .collect(),
    })
}

/// Ends one of the viewer's sessions, as `DELETE /api/v1/users/me/sessions/{id}` does; ending
/// its own signs this browser out.
pub async fn end_session(
    State(state): State<AppState>,
    PageId(id): PageId,
    form: SignedForm<Nothing>,
) -> Page {
    let signed = form.signed;
    users::end_session(&state, &signed.resumed.caller, id).await?;
    if id == keyward_core::console::session_id(&signed.token) {
        return Ok(signed_out(&state));
    }
    Ok(see_other("/sessions"))
}

/// A key as a row of a listing.
pub struct KeyRow {
    pub id: Uuid,
    pub name: String,
    pub start: String,
    pub scopes: String,
    pub status: &'static str,
    pub created: String,
    pub expires: String,
    pub last_used: String,
    /// Verifications per day over 30 days, with their total (listings only).
    pub spark: Option<(Chart, u64)>,
}

impl KeyRow {
    fn of(key: &ApiKey, now: OffsetDateTime) -> Self {
        Self {
            id: key.id,
            name: key.name.clone().unwrap_or_default(),
            start: key.start.clone(),
            scopes: key.scopes.join(" "),
            // A paused key is live in every other respect: the console says which it is.
            status: match key.status(now) {
                KeyStatus::Active if !key.enabled => "paused",
                status => status.as_str(),
            },
            created: when(key.created_at),
            expires: maybe(key.expires_at),
            last_used: maybe(key.last_used_at),
            spark: None,
        }
    }

    /// Rows of a listing, each with its 30-day sparkline.
    async fn listed(state: &AppState, keys: &[ApiKey]) -> Result<Vec<Self>, ConsoleError> {
        let now = state.now();
        let mut totals = stats::daily_totals(state, keys, 30).await?;
        Ok(keys
            .iter()
            .map(|k| {
                let per_day = totals.remove(&k.id).unwrap_or_default();
                Self {
                    spark: Some((chart::sparkline(&per_day), per_day.iter().sum())),
                    ..Self::of(k, now)
                }
            })
            .collect())
    }
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct KeysPage {
    nav: Nav,
    rows: Vec<KeyRow>,
    status: String,
    q: String,
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct KeysParams {
    #[serde(default)]
    status: String,
    #[serde(default)]
    q: String,
    cursor: Option<String>,
}

fn cursor_of(raw: Option<&str>) -> Result<Option<Cursor>, ConsoleError> {
    raw.filter(|c| !c.is_empty())
        .map(|c| c.parse::<Cursor>())
        .transpose()
        .map_err(|e| ApiError::invalid_field("cursor", e).into())
}

pub async fn keys(
    State(state): State<AppState>,
    signed: Signed,
    PageQuery(params): PageQuery<KeysParams>,
) -> Page {
    let now = state.now();
    let mut query = KeyQuery::new(now, KEYS_PER_PAGE);
    query.status =
        match params.status.as_str() {
            "" => None,
            s => Some(KeyStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_field("status", "one of active, expired, revoked")
            })?),
        };
    let q = params.q.trim();
    query.name_contains = (!q.is_empty()).then(|| q.to_owned());
    query.after = cursor_of(params.cursor.as_deref())?;
    let page = keys::list(&state, &signed.resumed.caller, Reach::Role, query).await?;
    html(&KeysPage {
        nav: Nav::of(&signed.resumed),
        rows: KeyRow::listed(&state, &page.items).await?,
        status: params.status.clone(),
        q: q.to_owned(),
        next: page.next.map(|c| c.to_string()),
    })
}

#[derive(Template)]
#[template(path = "console/dormant.html")]
struct DormantPage {
    nav: Nav,
    rows: Vec<KeyRow>,
    days: i64,
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct DormantParams {
    days: Option<i64>,
    cursor: Option<String>,
}

pub async fn dormant(
    State(state): State<AppState>,
    signed: Signed,
    PageQuery(params): PageQuery<DormantParams>,
) -> Page {
    let days = params.days.unwrap_or(90);
    if !(1..=365).contains(&days) {
        return Err(ApiError::invalid_field("days", "must be between 1 and 365").into());
    }
    let now = state.now();
    let mut query = KeyQuery::new(now, KEYS_PER_PAGE);
    query.dormant_before = Some(now - time::Duration::days(days));
    query.after = cursor_of(params.cursor.as_deref())?;
    let page = keys::list(&state, &signed.resumed.caller, Reach::Role, query).await?;
    html(&DormantPage {
        nav: Nav::of(&signed.resumed),
        rows: KeyRow::listed(&state, &page.items).await?,
        days,
        next: page.next.map(|c| c.to_string()),
    })
}

/// What the new-key form holds (kept to show it again with a refusal).
#[derive(Deserialize, Default)]
pub struct NewKeyForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    expires: String,
    #[serde(default)]
    expires_on: String,
    #[serde(default)]
    rate_limit_max: String,
    #[serde(default)]
    rate_limit_window: String,
    #[serde(default)]
    remaining: String,
    #[serde(default)]
    refill_interval: String,
    #[serde(default)]
    refill_amount: String,
    #[serde(default)]
    metadata: String,
    /// The tenant's slug (admins name one, as the API asks of them).
    #[serde(default)]
    tenant: String,
}

#[derive(Template)]
#[template(path = "console/new_key.html")]
struct NewKeyPage {
    nav: Nav,
    form: NewKeyForm,
    /// `(slug, name)` of the tenants an admin may put a key in; empty for everyone else.
    tenants: Vec<(String, String)>,
    error: Option<String>,
}

/// The tenants an admin may choose from in a form; none for anyone else (their own is implied).
async fn tenant_choices(
    state: &AppState,
    caller: &keyward_core::auth::Caller,
) -> Result<Vec<(String, String)>, ConsoleError> {
    if caller.principal.role != Role::Admin {
        return Ok(Vec::new());
    }
    Ok(tenants::list(state, caller, 1000, None)
        .await?
        .items
        .into_iter()
        .map(|t| (t.slug, t.name))
        .collect())
}

pub async fn new_key(State(state): State<AppState>, signed: Signed) -> Page {
    html(&NewKeyPage {
        tenants: tenant_choices(&state, &signed.resumed.caller).await?,
        nav: Nav::of(&signed.resumed),
        form: NewKeyForm {
            expires: "90d".into(),
            ..NewKeyForm::default()
        },
        error: None,
    })
}

fn number(field: &str, text: &str) -> Result<Option<i64>, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| ApiError::invalid_field(field, "must be a whole number"))
}

impl NewKeyForm {
    fn to_new_key(&self, now: OffsetDateTime, tenant: Option<Uuid>) -> Result<NewKey, ApiError> {
        let expiry = match self.expires.as_str() {
            "" | "never" => KeyExpiry::Never,
            "date" => KeyExpiry::At(date_field("expires_on", &self.expires_on)?),
            preset => KeyExpiry::After(
                keyward_domain::duration::parse_short(preset)
                    .map_err(|e| ApiError::invalid_field("expires", e))?,
            ),
        };
        let metadata = match self.metadata.trim() {
            "" => None,
            text => Some(
                serde_json::from_str(text)
                    .map_err(|_| ApiError::invalid_field("metadata", "must be a JSON object"))?,
            ),
        };
        let refill = match (
            self.refill_interval.as_str(),
            number("refill_amount", &self.refill_amount)?,
        ) {
            ("", _) | (_, None) => None,
            (interval, Some(amount)) => Some(keyward_domain::credits::Refill {
                interval: keyward_domain::credits::RefillInterval::parse(interval).ok_or_else(
                    || ApiError::invalid_field("refill_interval", "daily or monthly"),
                )?,
                amount,
                day: now.day(),
            }),
        };
        let window = self.rate_limit_window.trim();
        Ok(NewKey {
            allowed_ips: Vec::new(),
            rate_limit_scope: None,
            // As the API: admins name a tenant; everyone else gets their own.
            tenant: KeyTenant::Requested(tenant),
            name: Some(self.name.trim().to_owned()).filter(|n| !n.is_empty()),
            scopes: self.scopes.split_whitespace().map(str::to_owned).collect(),
            metadata,
            rate_limit_max: number("rate_limit_max", &self.rate_limit_max)?,
            rate_limit_window: (!window.is_empty()).then(|| window.to_owned()),
            expiry,
            remaining: number("remaining", &self.remaining)?,
            refill,
        })
    }
}

#[derive(Template)]
#[template(path = "console/shown_once.html")]
struct ShownOncePage {
    nav: Nav,
    title: &'static str,
    id: Uuid,
    name: String,
    plaintext: String,
}

fn shown_once(nav: Nav, title: &'static str, issued: keys::IssuedKey) -> Page {
    html(&ShownOncePage {
        nav,
        title,
        id: issued.key.id,
        name: issued.key.name.clone().unwrap_or_default(),
        plaintext: issued.plaintext.expose().to_owned(),
    })
}

pub async fn create_key(State(state): State<AppState>, form: SignedForm<NewKeyForm>) -> Page {
    let SignedForm { signed, form } = form;
    let nav = Nav::of(&signed.resumed);
    let caller = &signed.resumed.caller;
    let tenant = match form.tenant.trim() {
        "" => Ok(None),
        slug => tenants::id_by_slug(&state, caller, slug)
            .await
            .map(Some)
            .map_err(ApiError::from),
    };
    let created = match tenant.and_then(|t| form.to_new_key(state.now(), t)) {
        Ok(req) => keys::create(&state, caller, req)
            .await
            .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    match created {
        Ok(issued) => shown_once(nav, "Your new key", issued),
        Err(e @ (ApiError::BadRequest { .. } | ApiError::Forbidden(_) | ApiError::NotFound(_))) => {
            let page = NewKeyPage {
                nav,
                tenants: tenant_choices(&state, caller).await?,
                form,
                error: Some(e.message()),
            };
            Ok((e.status(), Html(page.render()?)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "console/key.html")]
struct KeyPage {
    nav: Nav,
    row: KeyRow,
    owner_id: Uuid,
    tenant_id: String,
    rate_limit: String,
    credits: String,
    metadata: String,
    scopes: String,
    /// The allowlist, separated by spaces; empty: anywhere.
    allowed_ips: String,
    rate_limit_max: String,
    rate_limit_window: String,
    remaining: String,
    expires_on: String,
    revoked: bool,
    revoked_at: String,
    chart: Chart,
    total: u64,
}

pub async fn key(State(state): State<AppState>, signed: Signed, PageId(id): PageId) -> Page {
    let caller = &signed.resumed.caller;
    let (key, usage) = stats::key_usage(&state, caller, Reach::Role, id, 30).await?;
    let now = state.now();
    let credits = key.credits.map(|c| c.current(now));
    html(&KeyPage {
        nav: Nav::of(&signed.resumed),
        row: KeyRow::of(&key, now),
        owner_id: key.owner_id,
        tenant_id: key.tenant_id.map_or_else(|| "—".into(), |t| t.to_string()),
        rate_limit: key.rate_limit.as_ref().map_or_else(
            || "none".into(),
            |r| match r.scope() {
                RateLimitScope::Node => format!("{} per {} (on each node)", r.max(), r.window()),
                RateLimitScope::Cluster => {
                    format!("{} per {} (whole cluster)", r.max(), r.window())
                }
            },
        ),
        credits: credits.map_or_else(
            || "unlimited".into(),
            |c| match c.refill {
                Some(r) => format!(
                    "{} left; back to {} {}",
                    c.remaining,
                    r.amount,
                    r.interval.as_str()
                ),
                None => format!("{} left", c.remaining),
            },
        ),
        metadata: key.metadata.to_string(),
        scopes: key.scopes.join(" "),
        allowed_ips: key.allowed_ips.to_strings().join(" "),
        rate_limit_max: key
            .rate_limit
            .as_ref()
            .map_or_else(String::new, |r| r.max().to_string()),
        rate_limit_window: key
            .rate_limit
            .as_ref()
            .map_or_else(String::new, |r| r.window().to_owned()),
        remaining: credits.map_or_else(String::new, |c| c.remaining.to_string()),
        expires_on: key
            .expires_at
            .map_or_else(String::new, |t| t.date().to_string()),
        revoked: key.status(now) == KeyStatus::Revoked,
        revoked_at: maybe(key.revoked_at),
        total: usage.days.iter().flat_map(|(_, c)| c.values()).sum(),
        chart: chart::stacked_days(&usage.days),
    })
}

/// The edit form of a key: every field it shows is sent, and an empty one clears what may be
/// cleared. A field the form leaves out is kept (the rename form sends only `name`).
#[derive(Deserialize)]
pub struct EditForm {
    name: Option<String>,
    scopes: Option<String>,
    expires: Option<String>,
    #[serde(default)]
    expires_on: String,
    rate_limit_max: Option<String>,
    rate_limit_window: Option<String>,
    remaining: Option<String>,
    metadata: Option<String>,
    /// `false` pauses the key, `true` resumes it (the pause form sends only this).
    enabled: Option<String>,
    /// Networks separated by white space; empty lifts the allowlist.
    allowed_ips: Option<String>,
    /// What the page showed in each field when it was loaded: a field sent back unchanged is
    /// kept as it is now, so that a stale page never puts back what changed since (credits
    /// spent meanwhile).
    #[serde(default)]
    scopes_was: Option<String>,
    #[serde(default)]
    rate_limit_max_was: Option<String>,
    #[serde(default)]
    rate_limit_window_was: Option<String>,
    #[serde(default)]
    remaining_was: Option<String>,
    #[serde(default)]
    metadata_was: Option<String>,
    #[serde(default)]
    allowed_ips_was: Option<String>,
}

/// `field`, unless it is what the page showed (`was`): then absent, i.e. kept.
fn changed<'a>(field: Option<&'a String>, was: Option<&String>) -> Option<&'a String> {
    match (field, was) {
        (Some(now), Some(before)) if now.trim() == before.trim() => None,
        (field, _) => field,
    }
}

/// A text field's change: absent keeps, empty clears, else sets.
fn patch_of(field: Option<&String>) -> Patch<String> {
    match field.map(|f| f.trim()) {
        None => Patch::Keep,
        Some("") => Patch::Clear,
        Some(text) => Patch::Set(text.to_owned()),
    }
}

impl EditForm {
    fn to_patch(&self) -> Result<KeyPatch, ApiError> {
        let number_patch = |field: &str, p: Patch<String>| -> Result<Patch<i64>, ApiError> {
            Ok(match p {
                Patch::Set(text) => number(field, &text)?.map_or(Patch::Clear, Patch::Set),
                Patch::Clear => Patch::Clear,
                Patch::Keep => Patch::Keep,
            })
        };
        let expires_at = match self.expires.as_deref() {
            None | Some("keep") => Patch::Keep,
            Some("never") => Patch::Clear,
            Some(other) if other != "date" => {
                return Err(ApiError::invalid_field("expires", "keep, never or date"))
            }
            Some(_) => Patch::Set(date_field("expires_on", &self.expires_on)?),
        };
        let metadata = match changed(self.metadata.as_ref(), self.metadata_was.as_ref())
            .map(|m| m.trim())
        {
            None => None,
            Some("") => Some(serde_json::json!({})),
            Some(text) => Some(
                serde_json::from_str(text)
                    .map_err(|_| ApiError::invalid_field("metadata", "must be a JSON object"))?,
            ),
        };
        let enabled = match self.enabled.as_deref() {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => return Err(ApiError::invalid_field("enabled", "true or false")),
        };
        Ok(KeyPatch {
            enabled,
            allowed_ips: changed(self.allowed_ips.as_ref(), self.allowed_ips_was.as_ref())
                .map(|s| s.split_whitespace().map(str::to_owned).collect()),
            rate_limit_scope: None,
            name: patch_of(self.name.as_ref()),
            scopes: changed(self.scopes.as_ref(), self.scopes_was.as_ref())
                .map(|s| s.split_whitespace().map(str::to_owned).collect()),
            metadata,
            expires_at,
            rate_limit_max: number_patch(
                "rate_limit_max",
                patch_of(changed(
                    self.rate_limit_max.as_ref(),
                    self.rate_limit_max_was.as_ref(),
                )),
            )?,
            rate_limit_window: patch_of(changed(
                self.rate_limit_window.as_ref(),
                self.rate_limit_window_was.as_ref(),
            )),
            remaining: number_patch(
                "remaining",
                patch_of(changed(
                    self.remaining.as_ref(),
                    self.remaining_was.as_ref(),
                )),
            )?,
            refill: Patch::Keep,
        })
    }
}

pub async fn rename_key(
    State(state): State<AppState>,
    PageId(id): PageId,
    form: SignedForm<EditForm>,
) -> Page {
    let patch = form.form.to_patch()?;
    keys::update(&state, &form.signed.resumed.caller, Reach::Role, id, patch).await?;
    Ok(see_other(&format!("/keys/{id}")))
}

#[derive(Deserialize)]
pub struct RotateForm {
    #[serde(default)]
    grace_period: String,
}

pub async fn rotate_key(
    State(state): State<AppState>,
    PageId(id): PageId,
    form: SignedForm<RotateForm>,
) -> Page {
    let grace = match form.form.grace_period.trim() {
        "" | "0" => None,
        text => Some(
            keyward_domain::duration::parse_short(text)
                .map_err(|e| ApiError::invalid_field("grace_period", e))?,
        ),
    };
    let caller = &form.signed.resumed.caller;
    let issued = keys::rotate(&state, caller, id, None, grace).await?;
    let nav = Nav::of(&form.signed.resumed);
    shown_once(nav, "Your rotated key", issued)
}

#[derive(Deserialize)]
pub struct RevokeForm {
    confirm: Option<String>,
}

pub async fn revoke_key(
    State(state): State<AppState>,
    PageId(id): PageId,
    form: SignedForm<RevokeForm>,
) -> Page {
    if !confirmed(&form.form.confirm) {
        return Err(
            ApiError::invalid_field("confirm", "tick the box to confirm the revocation").into(),
        );
    }
    keys::revoke(&state, &form.signed.resumed.caller, Reach::Role, id).await?;
    Ok(see_other(&format!("/keys/{id}")))
}

/// Whether a form's confirmation box was ticked: its value (`yes`; `on` is a browser's default
/// for a box without one) and nothing else, so that `confirm=no` is not taken for a yes.
fn confirmed(confirm: &Option<String>) -> bool {
    matches!(confirm.as_deref(), Some("yes" | "on"))
}

pub struct TenantRow {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub key_prefix: String,
    pub created: String,
}

#[derive(Template)]
#[template(path = "console/tenants.html")]
struct TenantsPage {
    nav: Nav,
    rows: Vec<TenantRow>,
    next: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct PageParams {
    cursor: Option<String>,
}

async fn tenants_page(
    state: &AppState,
    signed: &Signed,
    cursor: Option<&str>,
    error: Option<String>,
) -> Result<TenantsPage, ConsoleError> {
    let page = tenants::list(state, &signed.resumed.caller, 100, cursor_of(cursor)?).await?;
    Ok(TenantsPage {
        nav: Nav::of(&signed.resumed),
        rows: page
            .items
            .into_iter()
            .map(|t| TenantRow {
                id: t.id,
                name: t.name,
                slug: t.slug,
                key_prefix: t.key_prefix.unwrap_or_else(|| "kw".into()),
                created: when(t.created_at),
            })
            .collect(),
        next: page.next.map(|c| c.to_string()),
        error,
    })
}

pub async fn tenants(
    State(state): State<AppState>,
    signed: Signed,
    PageQuery(params): PageQuery<PageParams>,
) -> Page {
    html(&tenants_page(&state, &signed, params.cursor.as_deref(), None).await?)
}

#[derive(Deserialize)]
pub struct NewTenantForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    key_prefix: String,
}

pub async fn create_tenant(State(state): State<AppState>, form: SignedForm<NewTenantForm>) -> Page {
    let SignedForm { signed, form } = form;
    let prefix = form.key_prefix.trim();
    let changes = tenants::TenantChanges {
        policy: None,
        name: Some(form.name.trim().to_owned()),
        slug: Some(form.slug.trim().to_owned()),
        metadata: None,
        key_prefix: if prefix.is_empty() {
            Patch::Keep
        } else {
            Patch::Set(prefix.to_owned())
        },
    };
    match tenants::create(&state, &signed.resumed.caller, changes).await {
        Ok(_) => Ok(see_other("/tenants")),
        Err(e @ (keyward_core::Error::Invalid { .. } | keyward_core::Error::Conflict { .. })) => {
            let page = tenants_page(&state, &signed, None, Some(e.to_string())).await?;
            Ok((StatusCode::BAD_REQUEST, Html(page.render()?)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "console/tenant.html")]
struct TenantPage {
    nav: Nav,
    id: Uuid,
    name: String,
    slug: String,
    key_prefix: String,
    active_keys: u64,
    error: Option<String>,
}

async fn tenant_page(
    state: &AppState,
    signed: &Signed,
    id: Uuid,
    error: Option<String>,
) -> Result<TenantPage, ConsoleError> {
    let caller = &signed.resumed.caller;
    let tenant = tenants::get(state, caller, id).await?;
    let now = state.now();
    let of = keyward_store::KeysOf {
        tenant_id: Some(id),
        owner_id: None,
    };
    let counts = state
        .store
        .count_keys(of, now, now)
        .await
        .map_err(ApiError::from)?;
    Ok(TenantPage {
        nav: Nav::of(&signed.resumed),
        id: tenant.id,
        name: tenant.name,
        slug: tenant.slug,
        key_prefix: tenant.key_prefix.unwrap_or_default(),
        active_keys: counts.active,
        error,
    })
}

pub async fn tenant(State(state): State<AppState>, signed: Signed, PageId(id): PageId) -> Page {
    html(&tenant_page(&state, &signed, id, None).await?)
}

pub async fn update_tenant(
    State(state): State<AppState>,
    PageId(id): PageId,
    form: SignedForm<NewTenantForm>,
) -> Page {
    let SignedForm { signed, form } = form;
    let changes = tenants::TenantChanges {
        policy: None,
        name: Some(form.name.trim().to_owned()),
        slug: Some(form.slug.trim().to_owned()),
        metadata: None,
        key_prefix: patch_of(Some(&form.key_prefix)),
    };
    match tenants::update(&state, &signed.resumed.caller, id, changes).await {
        Ok(_) => Ok(see_other(&format!("/tenants/{id}"))),
        Err(e @ (keyward_core::Error::Invalid { .. } | keyward_core::Error::Conflict { .. })) => {
            let page = tenant_page(&state, &signed, id, Some(e.to_string())).await?;
            Ok((StatusCode::BAD_REQUEST, Html(page.render()?)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct DeleteTenantForm {
    confirm: Option<String>,
    revoke_keys: Option<String>,
}

pub async fn delete_tenant(
    State(state): State<AppState>,
    PageId(id): PageId,
    form: SignedForm<DeleteTenantForm>,
) -> Page {
    let SignedForm { signed, form } = form;
    if !confirmed(&form.confirm) {
        return Err(
            ApiError::invalid_field("confirm", "tick the box to confirm the deletion").into(),
        );
    }
    let force = form.revoke_keys.is_some();
    match tenants::delete(&state, &signed.resumed.caller, id, force).await {
        Ok(_) => Ok(see_other("/tenants")),
        Err(keyward_core::Error::Conflict { .. }) => {
            let why = "The tenant still has active keys: tick “revoke its active keys” to revoke them with it.";
            let page = tenant_page(&state, &signed, id, Some(why.into())).await?;
            Ok((StatusCode::CONFLICT, Html(page.render()?)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub role: &'static str,
    /// `active` or `disabled`.
    pub status: &'static str,
    pub tenant: String,
    pub created: String,
    /// Whether the viewer may disable, enable or delete this user (one it manages, not itself).
    pub manageable: bool,
}

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage {
    nav: Nav,
    rows: Vec<UserRow>,
    tenants: Vec<(String, String)>,
    next: Option<String>,
    error: Option<String>,
}

async fn users_page(
    state: &AppState,
    signed: &Signed,
    cursor: Option<&str>,
    error: Option<String>,
) -> Result<UsersPage, ConsoleError> {
    let caller = &signed.resumed.caller;
    let page = users::list(
        state,
        caller,
        users::UserFilter::default(),
        100,
        cursor_of(cursor)?,
    )
    .await?;
    // The tenants a new user may join: all (admins), or the caller's own (implied).
    let admin = caller.principal.role == Role::Admin;
    let all = if admin {
        tenants::list(state, caller, 1000, None).await?.items
    } else {
        Vec::new()
    };
    let slugs: std::collections::HashMap<Uuid, String> =
        all.iter().map(|t| (t.id, t.slug.clone())).collect();
    let tenants: Vec<(String, String)> = all.into_iter().map(|t| (t.slug, t.name)).collect();
    // Everyone a tenant admin sees is of its own tenant.
    let name_of = |id: Option<Uuid>| match id {
        None => "—".to_owned(),
        Some(id) if admin => slugs.get(&id).cloned().unwrap_or_else(|| id.to_string()),
        Some(_) => "this tenant".to_owned(),
    };
    Ok(UsersPage {
        nav: Nav::of(&signed.resumed),
        rows: page
            .items
            .into_iter()
            .map(|u| UserRow {
                id: u.id,
                manageable: u.id != caller.principal.user_id
                    && caller.principal.may_manage_user(&u).is_ok(),
                status: if u.is_disabled() {
                    "disabled"
                } else {
                    "active"
                },
                email: u.email,
                role: u.role.as_str(),
                tenant: name_of(u.tenant_id),
                created: when(u.created_at),
            })
            .collect(),
        tenants,
        next: page.next.map(|c| c.to_string()),
        error,
    })
}

pub async fn users(
    State(state): State<AppState>,
    signed: Signed,
    PageQuery(params): PageQuery<PageParams>,
) -> Page {
    html(&users_page(&state, &signed, params.cursor.as_deref(), None).await?)
}

#[derive(Deserialize)]
pub struct NewUserForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    tenant: String,
}

pub async fn create_user(State(state): State<AppState>, form: SignedForm<NewUserForm>) -> Page {
    let SignedForm { signed, form } = form;
    let caller = &signed.resumed.caller;
    let role = match form.role.as_str() {
        "" | "member" => Role::Member,
        other => Role::parse(other)
            .ok_or_else(|| ApiError::invalid_field("role", "admin, tenant_admin or member"))?,
    };
    let tenant_id = match form.tenant.trim() {
        "" => None,
        slug => Some(tenants::id_by_slug(&state, caller, slug).await?),
    };
    let req = users::NewUser {
        email: form.email.trim().to_owned(),
        password: form.password.into(),
        role,
        tenant_id,
    };
    let created = users::create(&state, caller, req).await.map(|_| ());
    users_outcome(&state, &signed, created).await
}

/// After a change on the users page: back to it, or the page again with the refusal said
/// (400 for bad input, 409 for a conflict such as the last admin); other errors as errors.
async fn users_outcome(
    state: &AppState,
    signed: &Signed,
    outcome: keyward_core::Result<()>,
) -> Page {
    let (status, why) = match outcome {
        Ok(()) => return Ok(see_other("/users")),
        Err(e @ keyward_core::Error::Invalid { .. }) => (StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ keyward_core::Error::Conflict { .. }) => (StatusCode::CONFLICT, e.to_string()),
        Err(e) => return Err(e.into()),
    };
    let page = users_page(state, signed, None, Some(why)).await?;
    Ok((status, Html(page.render()?)).into_response())
}

#[derive(Deserialize)]
pub struct UserStatusForm {
    #[serde(default)]
    disabled: String,
}

/// Disables (`disabled=true`) or enables (`disabled=false`) a user the viewer manages: as
/// `PATCH /api/v1/users/{id}` does, its sessions end and its keys stop verifying.
pub async fn set_user_status(
    State(state): State<AppState>,
    PageId(id): PageId,
    form: SignedForm<UserStatusForm>,
) -> Page {
    let SignedForm { signed, form } = form;
    let disabled = match form.disabled.as_str() {
        "true" => true,
        "false" => false,
        _ => return Err(ApiError::invalid_field("disabled", "true or false").into()),
    };
    let patch = users::UserPatch {
        role: None,
        disabled: Some(disabled),
    };
    let changed = users::update(&state, &signed.resumed.caller, id, patch)
        .await
        .map(|_| ());
    users_outcome(&state, &signed, changed).await
}

#[derive(Deserialize)]
pub struct DeleteUserForm {
    confirm: Option<String>,
}

/// Deletes a user the viewer manages, as `DELETE /api/v1/users/{id}` does (its keys revoked).
pub async fn delete_user(
    State(state): State<AppState>,
    PageId(id): PageId,
    form: SignedForm<DeleteUserForm>,
) -> Page {
    let SignedForm { signed, form } = form;
    if !confirmed(&form.confirm) {
        return Err(ApiError::invalid_field(
            "confirm",
            "tick the box to confirm the deletion (its keys are revoked)",
        )
        .into());
    }
    let deleted = users::delete(&state, &signed.resumed.caller, id)
        .await
        .map(|_| ());
    users_outcome(&state, &signed, deleted).await
}

pub struct AuditRow {
    pub at: String,
    pub action: String,
    pub actor: String,
    pub resource: String,
    pub source_ip: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    nav: Nav,
    rows: Vec<AuditRow>,
    action: String,
    actor_id: String,
    resource_type: String,
    resource_id: String,
    since: String,
    until: String,
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct AuditParams {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor_id: String,
    #[serde(default)]
    resource_type: String,
    #[serde(default)]
    resource_id: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    cursor: Option<String>,
}

fn day_start(field: &str, text: &str) -> Result<Option<OffsetDateTime>, ApiError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    date_field(field, text).map(Some)
}

pub async fn audit(
    State(state): State<AppState>,
    signed: Signed,
    PageQuery(p): PageQuery<AuditParams>,
) -> Page {
    let some = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let query = AuditQuery {
        action: some(&p.action),
        actor_id: some(&p.actor_id),
        resource_type: some(&p.resource_type),
        resource_id: some(&p.resource_id),
        since: day_start("since", &p.since)?,
        // Through the whole of the last day named.
        until: day_start("until", &p.until)?
            .map(|d| {
                d.checked_add(time::Duration::days(1))
                    .ok_or_else(|| ApiError::invalid_field("until", "a date before 9999-12-31"))
            })
            .transpose()?,
        after: cursor_of(p.cursor.as_deref())?,
        limit: 100,
        ..AuditQuery::default()
    };
    let page = audit::list(&state, &signed.resumed.caller, query).await?;
    html(&AuditPage {
        nav: Nav::of(&signed.resumed),
        rows: page
            .items
            .into_iter()
            .map(|e| AuditRow {
                at: when(e.created_at),
                action: e.action,
                actor: format!("{} {}", e.actor_type.as_str(), e.actor_id),
                resource: format!("{} {}", e.resource_type, e.resource_id),
                source_ip: e.source_ip.unwrap_or_default(),
            })
            .collect(),
        action: p.action,
        actor_id: p.actor_id,
        resource_type: p.resource_type,
        resource_id: p.resource_id,
        since: p.since,
        until: p.until,
        next: page.next.map(|c| c.to_string()),
    })
}

#[derive(Template)]
#[template(path = "console/stats.html")]
struct StatsPage {
    nav: Nav,
    total: u64,
    active: u64,
    expired: u64,
    revoked: u64,
    dormant: u64,
    codes: Chart,
    statuses: Chart,
    daily: Chart,
    top: Vec<(Uuid, String, String, u64)>,
}

pub async fn stats(State(state): State<AppState>, signed: Signed) -> Page {
    let caller = &signed.resumed.caller;
    let s = stats::stats(&state, caller, Reach::Role).await?;
    let daily = stats::daily(&state, caller, Reach::Role, 30).await?;
    let statuses = [
        ("active", s.keys.active),
        ("expired", s.keys.expired),
        ("revoked", s.keys.revoked),
        ("dormant", s.keys.dormant),
    ];
    html(&StatsPage {
        nav: Nav::of(&signed.resumed),
        total: s.keys.total,
        active: s.keys.active,
        expired: s.keys.expired,
        revoked: s.keys.revoked,
        dormant: s.keys.dormant,
        codes: chart::bars(s.last_30d.iter().map(|(code, n)| (code.to_string(), *n))),
        statuses: chart::bars(statuses.iter().map(|(s, n)| ((*s).to_owned(), *n))),
        daily: chart::stacked_days(&daily.days),
        top: s
            .top_keys
            .into_iter()
            .map(|k| (k.id, k.name.unwrap_or_default(), k.start, k.verifications))
            .collect(),
    })
}

/// Everything keyward holds about the signed-in person, as the API's export serves it (one JSON
/// document, streamed, as an attachment).
pub async fn export(State(state): State<AppState>, signed: Signed) -> Page {
    let caller = crate::auth::Caller(signed.resumed.caller);
    Ok(crate::api::v1::stats::export_response(&state, &caller, false).await?)
}

pub async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../assets/console.css"),
    )
}

pub async fn js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../assets/console.js"),
    )
}

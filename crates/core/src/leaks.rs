//! Leaked-key reports: a secret scanner says a key's plaintext was published; keyward checks
//! the report's origin, looks the key up, and (by its tenant's policy, on by default) revokes it.
//!
//! Two doors, one report format: GitHub's secret-scanning partner protocol (a JSON array of
//! `{token, type, url, source}`, signed with ECDSA P-256 / SHA-256 over the raw body; the
//! signature, base64 DER, in `Github-Public-Key-Signature`, the key's id in
//! `Github-Public-Key-Identifier`; see GitHub's "Secret scanning partner program"), and the same
//! array from any scanner that holds a credential with `keyward:report_leak`. Both answer each
//! token with the protocol's feedback shape, `{token_hash, token_type, label}`, `label` being
//! `true_positive` (a key keyward issued) or `false_positive`. A token is never echoed back:
//! `token_hash` is the lower-case hex SHA-256 of the reported token.
//!
//! A key is never revoked on the word of an unverified report, and reports are idempotent: a
//! key's leak is audited and announced (`key.leaked`) once, however often it is reported.

use keyward_domain::scope::KeywardRight;
use keyward_domain::{Actor, AuditAction, Event, EventType, KeyDigest, KeyStatus, ParsedKey};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::{Caller, RequestMeta};
use crate::error::{AuthFailure, Error, Result};
use crate::Keyward;

/// The most tokens one report may carry.
pub const MAX_TOKENS: usize = 100;
/// The longest `type`, `url` or `source` kept from a report, in characters.
const MAX_FIELD_CHARS: usize = 500;

/// One reported token, as GitHub sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    pub token: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    TruePositive,
    FalsePositive,
}

/// The answer about one reported token, in GitHub's feedback shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Lower-case hex SHA-256 of the reported token.
    pub token_hash: String,
    pub token_type: String,
    pub label: Label,
}

pub use crate::github_keys::GithubKeys;

fn parse_reports(body: &[u8]) -> Result<Vec<Report>> {
    let reports: Vec<Report> = serde_json::from_slice(body).map_err(|e| {
        Error::invalid(
            "invalid_body",
            format!("the body must be a JSON array of {{token, type, url, source}}: {e}"),
        )
    })?;
    if reports.len() > MAX_TOKENS {
        return Err(Error::invalid(
            "invalid_body",
            "at most 100 tokens per report",
        ));
    }
    Ok(reports)
}

/// A report from GitHub's secret scanning: `key_id` and `signature` are the values of the
/// `Github-Public-Key-Identifier` and `Github-Public-Key-Signature` headers, `body` the raw
/// body they sign. A missing or wrong signature, or no keys configured, is
/// [`Error::Unauthenticated`]; nothing is looked up before the signature holds.
pub async fn report_from_github(
    state: &Keyward,
    key_id: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    meta: RequestMeta,
) -> Result<Vec<Verdict>> {
    let (Some(key_id), Some(signature)) = (key_id, signature) else {
        return Err(Error::Unauthenticated(AuthFailure::Missing));
    };
    if !state.settings.github_keys.verify(key_id, signature, body) {
        return Err(Error::Unauthenticated(AuthFailure::Invalid));
    }
    let reports = parse_reports(body)?;
    let actor = Actor::scanner("github", meta.source_ip, meta.request_id);
    judge_all(state, &actor, reports).await
}

/// A report from any scanner, by a caller holding `keyward:report_leak`.
pub async fn report(state: &Keyward, caller: &Caller, body: &[u8]) -> Result<Vec<Verdict>> {
    caller.principal.require(KeywardRight::ReportLeak)?;
    let reports = parse_reports(body)?;
    judge_all(state, &caller.actor(), reports).await
}

async fn judge_all(state: &Keyward, actor: &Actor, reports: Vec<Report>) -> Result<Vec<Verdict>> {
    let mut verdicts = Vec::with_capacity(reports.len());
    for r in reports {
        let label = judge(state, actor, &r).await?;
        verdicts.push(Verdict {
            token_hash: KeyDigest::of(&r.token).to_hex(),
            token_type: r.kind.unwrap_or_default(),
            label,
        });
    }
    Ok(verdicts)
}

fn cut(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(|s| keyward_domain::text::excerpt(s, MAX_FIELD_CHARS).into_owned())
}

/// Whether the token is a key keyward issued, and what follows for it.
async fn judge(state: &Keyward, actor: &Actor, report: &Report) -> Result<Label> {
    // A token of the wrong shape or checksum was never keyward's: no lookup.
    let Ok(parsed) = ParsedKey::parse(&report.token) else {
        return Ok(Label::FalsePositive);
    };
    let Some(key) = state.store.get_key_by_digest(&parsed.digest()).await? else {
        return Ok(Label::FalsePositive);
    };
    let now = keyward_domain::clock::truncate_millis(state.now());
    let found =
        json!({"type": cut(&report.kind), "url": cut(&report.url), "source": cut(&report.source)});
    let policy = match key.tenant_id {
        Some(t) => state
            .store
            .get_tenant(t)
            .await?
            .map(|t| t.policy)
            .unwrap_or_default(),
        None => keyward_domain::TenantPolicy::default(),
    };
    let live = key.status(now) != KeyStatus::Revoked;
    // Revoke first, then record the leak: a report repeated after a crash between the two
    // finds the key revoked and records the leak then.
    let key = if live && policy.revoke_leaked_keys {
        match crate::keys::revoke_as(state, actor, key.clone(), json!({"reason": "leaked"})).await {
            Ok(revoked) => revoked,
            Err(Error::NotFound(_)) => key,
            Err(e) => return Err(e),
        }
    } else {
        key
    };
    let audit = actor
        .entry(now, AuditAction::ApiKeyLeak, key.id)
        .tenant(key.tenant_id)
        .subject(key.owner_id)
        .changes(json!({"report": found, "revoked": policy.revoke_leaked_keys}));
    let event = Event::about_key(
        EventType::KeyLeaked,
        &key,
        actor,
        now,
        json!({"report": found, "revoked": key.status(now) == KeyStatus::Revoked}),
    );
    state
        .store
        .notify_once(key.id, "leaked", now, Some(&audit), &[event])
        .await?;
    state.cache.invalidate(&key.digest);
    Ok(Label::TruePositive)
}

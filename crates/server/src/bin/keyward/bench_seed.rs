//! Seeding for the benchmark (`keyward bench-seed`): many real keys written straight through the
//! store in large transactions, each batch audited as one import. The plaintexts can be written
//! to a file so that any load tool can replay them; the verifier key the load uses goes to its
//! own file. Nothing here is on a request path.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use keyward_domain::ratelimit::KeyRateLimit;
use keyward_domain::AuditAction;
use keyward_domain::{Actor, ApiKey, IpAllowlist, KeyPrefix, OwnerLimits, PlainKey, Role};
use keyward_store::Store;
use time::OffsetDateTime;
use uuid::Uuid;

use keyward_core::Keyward;
use keyward_core::{tenants, users};

const BENCH_TENANT: &str = "bench";
const BENCH_EMAIL: &str = "bench@keyward.invalid";
/// The owner of keys seeded `--with-policies`: its shared rate limit must not touch the others.
const POLICIES_EMAIL: &str = "bench-policies@keyward.invalid";

/// What to seed.
#[derive(Debug)]
pub struct Seeding<'a> {
    pub count: u64,
    /// Keys per transaction.
    pub batch: usize,
    pub keys_out: Option<&'a Path>,
    pub verifier_out: &'a Path,
    /// Keys with an allowlist, expression scopes and an owner limit.
    pub with_policies: bool,
}

#[derive(Debug)]
pub struct SeedReport {
    pub count: u64,
    pub seconds: f64,
}

/// A new key of `owner` in `tenant` with `scopes`, as the lifecycle makes one.
fn new_key(
    owner: Uuid,
    tenant: Uuid,
    scopes: &[&str],
    now: OffsetDateTime,
) -> anyhow::Result<(PlainKey, ApiKey)> {
    let prefix = KeyPrefix::default_prefix();
    let plain =
        PlainKey::generate(&prefix).map_err(|e| anyhow::anyhow!("OS random source: {e}"))?;
    let scopes = keyward_domain::Scopes::parse(scopes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = ApiKey::issued(
        Uuid::now_v7(),
        &plain,
        &prefix,
        owner,
        Some(tenant),
        scopes,
        now,
    );
    Ok((plain, key))
}

/// The bench tenant and its user (`email`), made on first use.
async fn bench_owner(state: &Keyward, email: &str) -> anyhow::Result<(Uuid, Uuid)> {
    let store = &state.store;
    let tenant = match store.get_tenant_by_slug(BENCH_TENANT).await? {
        Some(t) => t.id,
        None => {
            let changes = tenants::TenantChanges {
                policy: None,
                name: Some("Benchmark".into()),
                slug: Some(BENCH_TENANT.into()),
                metadata: None,
                key_prefix: keyward_domain::Patch::Keep,
            };
            tenants::create_as(state, &Actor::system(), changes)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .id
        }
    };
    let user = match store.get_user_by_email(email).await? {
        Some(u) => u.id,
        None => {
            let password = PlainKey::generate(&KeyPrefix::default_prefix())
                .map_err(|e| anyhow::anyhow!("OS random source: {e}"))?
                .expose()
                .into();
            let req = users::NewUser {
                email: email.into(),
                password,
                role: Role::Member,
                tenant_id: Some(tenant),
            };
            users::create_as(state, &Actor::system(), req)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .id
        }
    };
    Ok((tenant, user))
}

/// The owner limit of keys seeded with policies: 100,000 a second, which the load never reaches.
async fn limit_owner(state: &Keyward, owner: Uuid, now: OffsetDateTime) -> anyhow::Result<()> {
    let limits = OwnerLimits {
        user_id: owner,
        rate_limit: Some(
            KeyRateLimit::set(100_000, "1 second").map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        credits: None,
        updated_at: now,
    };
    let audit = Actor::system()
        .entry(now, AuditAction::UserSetLimits, owner)
        .subject(owner);
    state
        .store
        .set_owner_limits(owner, Some(&limits), &audit)
        .await?;
    Ok(())
}

/// Seeds `count` keys (scope `bench:read`; with policies also `bench:write`, an allowlist and an
/// owner limit) in transactions of `batch`, writing their plaintexts to `keys_out` (one per
/// line) when given, and a new `keyward:verify` key to `verifier_out`.
pub async fn seed(state: &Keyward, seeding: Seeding<'_>) -> anyhow::Result<SeedReport> {
    let Seeding {
        count,
        batch,
        keys_out,
        verifier_out,
        with_policies,
    } = seeding;
    let store: Arc<dyn Store> = state.store.clone();
    let email = if with_policies {
        POLICIES_EMAIL
    } else {
        BENCH_EMAIL
    };
    let (tenant, owner) = bench_owner(state, email).await?;
    let now = keyward_domain::clock::truncate_millis(state.now());
    let (scopes, allowed_ips): (&[&str], IpAllowlist) = if with_policies {
        limit_owner(state, owner, now).await?;
        (
            &["bench:read", "bench:write"],
            IpAllowlist::parse(&["127.0.0.0/8", "10.0.0.0/8", "2001:db8::/32"])
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        )
    } else {
        (&["bench:read"], IpAllowlist::anywhere())
    };
    let (verifier, key) = new_key(owner, tenant, &["keyward:verify"], now)?;
    let audit = Actor::system()
        .entry(now, AuditAction::ApiKeyCreate, key.id)
        .tenant(Some(tenant))
        .subject(owner);
    // A fresh file each run (write_private never overwrites, so that it cannot widen a file).
    match std::fs::remove_file(verifier_out) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("replacing {}", verifier_out.display()))
        }
        _ => {}
    }
    crate::cli::write_private(verifier_out, format!("{}\n", verifier.expose()).as_bytes())
        .with_context(|| format!("writing {}", verifier_out.display()))?;
    store.create_key(&key, &audit).await?;

    let mut out = match keys_out {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    let bar = indicatif::ProgressBar::new(count);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} keys  {per_sec}  eta {eta}")
            .context("progress template")?,
    );
    let started = Instant::now();
    let mut made = 0u64;
    while made < count {
        let n = (count - made).min(batch as u64) as usize;
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            let (plain, key) = new_key(owner, tenant, scopes, now)?;
            let key = ApiKey {
                allowed_ips: allowed_ips.clone(),
                ..key
            };
            if let Some(out) = out.as_mut() {
                writeln!(out, "{}", plain.expose()).context("writing the keys file")?;
            }
            keys.push(key);
        }
        let audit = Actor::system()
            .entry(now, AuditAction::ApiKeyImport, format!("{n} keys"))
            .tenant(Some(tenant))
            .subject(owner);
        store.import_keys(&keys, &audit).await?;
        made += n as u64;
        bar.set_position(made);
    }
    bar.finish_and_clear();
    if let Some(mut out) = out {
        out.flush().context("writing the keys file")?;
    }
    Ok(SeedReport {
        count: made,
        seconds: started.elapsed().as_secs_f64(),
    })
}

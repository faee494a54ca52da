//! Seeding for the benchmark (`keyward bench-seed`): many real keys written straight through the
//! store in large transactions, each batch audited as one import. The plaintexts can be written
//! to a file so that any load tool can replay them; the verifier key the load uses goes to its
//! own file. Nothing here is on a request path.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use keyward_domain::AuditAction;
use keyward_domain::{Actor, ApiKey, KeyPrefix, PlainKey, Role};
use keyward_store::Store;
use time::OffsetDateTime;
use uuid::Uuid;

use keyward_core::Keyward;
use keyward_core::{tenants, users};

const BENCH_TENANT: &str = "bench";
const BENCH_EMAIL: &str = "bench@keyward.invalid";

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

/// The bench tenant and its user, made on first use.
async fn bench_owner(state: &Keyward) -> anyhow::Result<(Uuid, Uuid)> {
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
    let user = match store.get_user_by_email(BENCH_EMAIL).await? {
        Some(u) => u.id,
        None => {
            let password = PlainKey::generate(&KeyPrefix::default_prefix())
                .map_err(|e| anyhow::anyhow!("OS random source: {e}"))?
                .expose()
                .into();
            let req = users::NewUser {
                email: BENCH_EMAIL.into(),
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

/// Seeds `count` keys (scope `bench:read`) in transactions of `batch`, writing their plaintexts
/// to `keys_out` (one per line) when given, and a new `keyward:verify` key to `verifier_out`.
pub async fn seed(
    state: &Keyward,
    count: u64,
    batch: usize,
    keys_out: Option<&Path>,
    verifier_out: &Path,
) -> anyhow::Result<SeedReport> {
    let store: Arc<dyn Store> = state.store.clone();
    let (tenant, owner) = bench_owner(state).await?;
    let now = keyward_domain::clock::truncate_millis(state.now());
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
            let (plain, key) = new_key(owner, tenant, &["bench:read"], now)?;
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

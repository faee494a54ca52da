//! Password hashing with argon2id, always off the async runtime (`spawn_blocking`): a hash takes
//! tens of milliseconds of CPU and must not stall other requests.
//!
//! Unknown emails are checked against a dummy hash made with the same parameters, so a wrong
//! password and an unknown email take the same time.
//!
//! A hash costs 19 MiB and tens of milliseconds, and callers who have not signed in can ask for
//! one: at most one hash runs per core at a time, at most [`MAX_QUEUED`] more wait, and past that
//! the answer is 503 with `Retry-After` (so that no flood of sign-ins can take the machine's
//! memory or every blocking thread).

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

use crate::error::Error;

/// Hashes that may wait for a core at once; more are refused with 503.
pub const MAX_QUEUED: usize = 64;

#[derive(Clone)]
pub struct Passwords {
    params: Params,
    /// A hash of a random password, verified against when the email is unknown.
    dummy_hash: Arc<String>,
    gate: Arc<HashGate>,
}

/// Bounds the hashes running (one per core) and waiting ([`MAX_QUEUED`]).
#[derive(Debug)]
struct HashGate {
    running: tokio::sync::Semaphore,
    /// Hashes waiting for or holding a permit.
    admitted: std::sync::atomic::AtomicUsize,
    most_admitted: usize,
}

impl HashGate {
    fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            running: tokio::sync::Semaphore::new(cores),
            admitted: std::sync::atomic::AtomicUsize::new(0),
            most_admitted: cores + MAX_QUEUED,
        }
    }

    /// Runs `hash` on a blocking thread once a core is free; 503 when too many already wait.
    async fn run<T: Send + 'static>(
        &self,
        hash: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        use std::sync::atomic::Ordering;
        if self.admitted.fetch_add(1, Ordering::AcqRel) >= self.most_admitted {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::Busy);
        }
        let result = async {
            let _permit = self
                .running
                .acquire()
                .await
                .map_err(|e| Error::Internal(format!("hashing gate: {e}")))?;
            tokio::task::spawn_blocking(hash)
                .await
                .map_err(|e| Error::Internal(format!("hashing task: {e}")))
        }
        .await;
        self.admitted.fetch_sub(1, Ordering::AcqRel);
        result
    }
}

impl std::fmt::Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl Passwords {
    /// OWASP's argon2id baseline: 19 MiB, 2 iterations, 1 lane. `Internal` when the OS random
    /// source fails (the dummy hash needs a salt).
    pub fn production() -> Result<Self, Error> {
        let params = Params::new(19 * 1024, 2, 1, None)
            .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))?;
        Self::with_params(params)
    }

    /// Cheap parameters for tests only.
    pub fn fast_insecure_for_tests() -> Result<Self, Error> {
        let params = Params::new(256, 1, 1, None)
            .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))?;
        Self::with_params(params)
    }

    fn with_params(params: Params) -> Result<Self, Error> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random)
            .map_err(|e| Error::Internal(format!("OS random source: {e}")))?;
        let dummy = hash_with(&params, &random)?;
        Ok(Self {
            params,
            dummy_hash: Arc::new(dummy),
            gate: Arc::new(HashGate::new()),
        })
    }

    pub async fn hash(&self, password: SecretString) -> Result<String, Error> {
        let params = self.params.clone();
        self.gate
            .run(move || hash_with(&params, password.expose_secret().as_bytes()))
            .await?
    }

    /// Verifies `password` against `stored`, or against the dummy hash when `stored` is `None`
    /// (and then always answers false), taking the same time either way.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<bool, Error> {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.as_str().to_owned());
        let ok = self
            .gate
            .run(move || {
                PasswordHash::new(&hash)
                    .map(|parsed| {
                        Argon2::default()
                            .verify_password(password.expose_secret().as_bytes(), &parsed)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        Ok(known && ok)
    }
}

fn hash_with(params: &Params, password: &[u8]) -> Result<String, Error> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| Error::Internal(format!("OS random source: {e}")))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| Error::Internal(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("argon2: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_unknown_users_never_match() {
        let p = Passwords::fast_insecure_for_tests().unwrap();
        let hash = p.hash("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(p
            .verify("correct horse battery".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!p.verify("wrong".into(), Some(hash)).await.unwrap());
        assert!(!p.verify("anything".into(), None).await.unwrap());
    }
}

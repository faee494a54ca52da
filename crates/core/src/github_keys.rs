//! The public keys GitHub signs secret-scanning reports with: operator settings, apart from the
//! operations so that the context can hold them without importing what imports it.

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;

/// One public key GitHub signs reports with.
#[derive(Clone)]
struct GithubKey {
    id: String,
    key: VerifyingKey,
}

/// The public keys that GitHub's reports may be signed with, from the operator's copy of
/// `https://api.github.com/meta/public_keys/secret_scanning`
/// (`{"public_keys": [{"key_identifier", "key" (PEM), "is_current"}]}`).
#[derive(Clone, Default)]
pub struct GithubKeys(Vec<GithubKey>);

impl std::fmt::Debug for GithubKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|k| &k.id))
            .finish()
    }
}

#[derive(Deserialize)]
struct MetaFile {
    public_keys: Vec<MetaKey>,
}

#[derive(Deserialize)]
struct MetaKey {
    key_identifier: String,
    key: String,
}

impl GithubKeys {
    /// Reads GitHub's public-keys document; an error names what is wrong with it.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let file: MetaFile = serde_json::from_str(text)
            .map_err(|e| format!("not GitHub's public-keys document: {e}"))?;
        let keys = file
            .public_keys
            .into_iter()
            .map(|k| {
                VerifyingKey::from_public_key_pem(&k.key)
                    .map(|key| GithubKey {
                        id: k.key_identifier.clone(),
                        key,
                    })
                    .map_err(|e| {
                        format!("key {:?} is not a P-256 public key: {e}", k.key_identifier)
                    })
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err("the document holds no public key".into());
        }
        Ok(Self(keys))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `signature` (base64 of a DER ECDSA signature) over `body` is by the key named
    /// `key_id`.
    pub fn verify(&self, key_id: &str, signature: &str, body: &[u8]) -> bool {
        use base64::Engine;
        let Some(key) = self.0.iter().find(|k| k.id == key_id) else {
            return false;
        };
        let Ok(der) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
            return false;
        };
        let Ok(sig) = Signature::from_der(&der) else {
            return false;
        };
        key.key.verify(body, &sig).is_ok()
    }
}

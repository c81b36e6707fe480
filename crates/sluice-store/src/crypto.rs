//! Secrets at rest: AES-256-GCM under one master key.
//!
//! Every ciphertext is bound to the place it is stored (its *context*, e.g. `instance/<id>/password`) through
//! the AEAD's associated data, so a ciphertext copied into another row does not decrypt. Stored form:
//! `v1:` + base64(nonce ‖ ciphertext ‖ tag), with a fresh random 96-bit nonce per encryption.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use thiserror::Error;

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("master key from {origin} is malformed: expected 64 hex digits or base64 of 32 bytes")]
    Malformed { origin: String },
    #[error("cannot read master key file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create master key file {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("master key file {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`")]
    Permissions { path: PathBuf, mode: u32 },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecryptError {
    #[error("stored secret is not in a known format")]
    Format,
    #[error("stored secret does not decrypt under this master key (wrong key, or the value was tampered with)")]
    Authentication,
}

/// Where the master key comes from.
#[derive(Clone)]
pub enum KeySource {
    /// `SLUICE_MASTER_KEY`: 64 hex digits or base64 of 32 bytes.
    Env(sluice_core::Secret<String>),
    /// A key file (created with mode 0600 when the store is new).
    File(PathBuf),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Env(_) => f.write_str("KeySource::Env(***)"),
            KeySource::File(p) => write!(f, "KeySource::File({})", p.display()),
        }
    }
}

impl KeySource {
    pub fn describe(&self) -> String {
        match self {
            KeySource::Env(_) => "SLUICE_MASTER_KEY".to_string(),
            KeySource::File(p) => p.display().to_string(),
        }
    }
}

/// The 256-bit master key. Not `Debug`, not `Clone` outside this module's control.
pub struct MasterKey([u8; 32]);

impl MasterKey {
    pub fn parse(text: &str, origin: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let malformed = || KeyError::Malformed { origin: origin.to_string() };
        let bytes = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|_| malformed())?
        } else {
            B64.decode(text).map_err(|_| malformed())?
        };
        let arr: [u8; 32] = bytes.try_into().map_err(|_| malformed())?;
        Ok(MasterKey(arr))
    }

    pub fn generate() -> Self {
        let key = Aes256Gcm::generate_key(OsRng);
        MasterKey(key.into())
    }

    /// Loads the key; `Ok(None)` when the source is a file that does not exist yet.
    pub fn load(source: &KeySource) -> Result<Option<Self>, KeyError> {
        match source {
            KeySource::Env(v) => MasterKey::parse(v.expose(), "SLUICE_MASTER_KEY").map(Some),
            KeySource::File(path) => {
                let text = match std::fs::read_to_string(path) {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(source) => return Err(KeyError::Read { path: path.clone(), source }),
                };
                let mode = std::fs::metadata(path).map_err(|source| KeyError::Read { path: path.clone(), source })?;
                let mode = std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777;
                if mode & 0o077 != 0 {
                    return Err(KeyError::Permissions { path: path.clone(), mode });
                }
                MasterKey::parse(&text, &path.display().to_string()).map(Some)
            }
        }
    }

    /// Writes a new key file with mode 0600; refuses to overwrite an existing file.
    pub fn create_file(path: &Path) -> Result<Self, KeyError> {
        let key = MasterKey::generate();
        let err = |source| KeyError::Create { path: path.to_path_buf(), source };
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(err)?;
        f.write_all(format!("{}\n", hex::encode(key.0)).as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        Ok(key)
    }
}

/// Encrypts and decrypts secrets for the store.
#[derive(Clone)]
pub struct SecretCipher {
    aead: Aes256Gcm,
}

impl SecretCipher {
    pub fn new(key: &MasterKey) -> Self {
        Self { aead: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.0)) }
    }

    pub fn encrypt(&self, context: &str, plaintext: &[u8]) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ct = self
            .aead
            .encrypt(&nonce, Payload { msg: plaintext, aad: context.as_bytes() })
            // AES-GCM encryption fails only for inputs over 64 GiB.
            .expect("secret too large to encrypt");
        let mut buf = Vec::with_capacity(NONCE_LEN + ct.len());
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(&ct);
        format!("{PREFIX}{}", B64.encode(buf))
    }

    pub fn decrypt(&self, context: &str, stored: &str) -> Result<Vec<u8>, DecryptError> {
        let body = stored.strip_prefix(PREFIX).ok_or(DecryptError::Format)?;
        let buf = B64.decode(body).map_err(|_| DecryptError::Format)?;
        if buf.len() < NONCE_LEN + 16 {
            return Err(DecryptError::Format);
        }
        let (nonce, ct) = buf.split_at(NONCE_LEN);
        self.aead.decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: context.as_bytes() }).map_err(|_| DecryptError::Authentication)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_bound_to_context_and_key() {
        let c = SecretCipher::new(&MasterKey::generate());
        let stored = c.encrypt("instance/1/password", b"s3cret");
        assert!(!stored.contains("s3cret"));
        assert_eq!(c.decrypt("instance/1/password", &stored).unwrap(), b"s3cret");
        assert_eq!(c.decrypt("instance/2/password", &stored), Err(DecryptError::Authentication));
        let other = SecretCipher::new(&MasterKey::generate());
        assert_eq!(other.decrypt("instance/1/password", &stored), Err(DecryptError::Authentication));
        assert_eq!(c.decrypt("x", "plain"), Err(DecryptError::Format));
    }

    #[test]
    fn key_file_is_private_and_parses_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::create_file(&path).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        assert!(MasterKey::load(&KeySource::File(path.clone())).unwrap().is_some());
        assert!(MasterKey::create_file(&path).is_err(), "must not overwrite a key");
        assert!(MasterKey::parse("zz", "test").is_err());
    }
}

//! The backend's HPKE key ring: every `hpke-<keyid>.secret` file in the keys
//! directory is a live key (several at once during rotation). `keygen` adds one.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use tacit_shared::hpke::{KeyId, RecipientKeyPair};

/// Errors of the key ring.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A key file is malformed.
    #[error("{0}: not a 32-byte X25519 private key, or its name does not match its key id")]
    Malformed(PathBuf),
    /// A private key file is readable by others.
    #[error("{0}: private key is readable by group or others (chmod 600)")]
    Permissions(PathBuf),
    /// Key generation failed.
    #[error("key generation failed: {0}")]
    Generate(String),
}

/// The live HPKE private keys, by key id.
#[derive(Default)]
pub struct KeyRing {
    keys: HashMap<KeyId, RecipientKeyPair>,
}

impl KeyRing {
    /// Loads every `hpke-*.secret` in `dir` (a missing directory is an empty ring).
    pub fn load(dir: &Path) -> Result<KeyRing, KeyError> {
        let mut keys = HashMap::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(KeyRing { keys }),
            Err(source) => {
                return Err(KeyError::Io {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        };
        for entry in entries {
            let entry = entry.map_err(|source| KeyError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(id_hex) = name
                .strip_prefix("hpke-")
                .and_then(|n| n.strip_suffix(".secret"))
            else {
                continue;
            };
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                // Follows links: a Kubernetes Secret volume presents each key as a
                // symlink into `..data/`; what must be private is the file it points to.
                let mode = std::fs::metadata(&path)
                    .map_err(|source| KeyError::Io {
                        path: path.clone(),
                        source,
                    })?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(KeyError::Permissions(path));
                }
            }
            let bytes = std::fs::read(&path).map_err(|source| KeyError::Io {
                path: path.clone(),
                source,
            })?;
            let secret: [u8; 32] = bytes
                .try_into()
                .map_err(|_| KeyError::Malformed(path.clone()))?;
            let pair = RecipientKeyPair::from_secret_bytes(secret);
            if KeyId::from_hex(id_hex) != Some(pair.key_id()) {
                return Err(KeyError::Malformed(path));
            }
            keys.insert(pair.key_id(), pair);
        }
        Ok(KeyRing { keys })
    }

    /// Generates a new key in `dir` (private key mode 0600, public key beside it).
    pub fn generate(dir: &Path) -> Result<RecipientKeyPair, KeyError> {
        std::fs::create_dir_all(dir).map_err(|source| KeyError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let pair = RecipientKeyPair::generate(&SystemRandom::new())
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        let id = pair.key_id().to_hex();
        let secret_path = dir.join(format!("hpke-{id}.secret"));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&secret_path).map_err(|source| KeyError::Io {
            path: secret_path.clone(),
            source,
        })?;
        f.write_all(&pair.secret_bytes()[..])
            .map_err(|source| KeyError::Io {
                path: secret_path.clone(),
                source,
            })?;
        f.sync_all().map_err(|source| KeyError::Io {
            path: secret_path.clone(),
            source,
        })?;
        let pub_path = dir.join(format!("hpke-{id}.pub"));
        std::fs::write(&pub_path, pair.public_key().as_bytes()).map_err(|source| KeyError::Io {
            path: pub_path,
            source,
        })?;
        Ok(pair)
    }

    /// The key with this id.
    pub fn get(&self, id: &KeyId) -> Option<&RecipientKeyPair> {
        self.keys.get(id)
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the ring is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds a key (tests, embedded use).
    pub fn insert(&mut self, pair: RecipientKeyPair) {
        self.keys.insert(pair.key_id(), pair);
    }

    /// Key ids, sorted.
    pub fn ids(&self) -> Vec<KeyId> {
        let mut ids: Vec<_> = self.keys.keys().copied().collect();
        ids.sort();
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_load_and_reject_bad_files() {
        let dir = std::env::temp_dir().join(format!("tacit-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(KeyRing::load(&dir).unwrap().is_empty());
        let a = KeyRing::generate(&dir).unwrap();
        let b = KeyRing::generate(&dir).unwrap();
        let ring = KeyRing::load(&dir).unwrap();
        assert_eq!(ring.len(), 2);
        assert!(ring.get(&a.key_id()).is_some() && ring.get(&b.key_id()).is_some());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let p = dir.join(format!("hpke-{}.secret", a.key_id()));
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(KeyRing::load(&dir), Err(KeyError::Permissions(_))));
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::write(dir.join("hpke-0000000000000000.secret"), [1u8; 32]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                dir.join("hpke-0000000000000000.secret"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
        assert!(matches!(KeyRing::load(&dir), Err(KeyError::Malformed(_))));
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The layout of a Kubernetes Secret volume: each key is a symlink into `..data/`.
    #[cfg(unix)]
    #[test]
    fn keys_behind_symlinks_are_checked_at_their_target() {
        use std::os::unix::fs::PermissionsExt;
        let src = std::env::temp_dir().join(format!("tacit-keys-src-{}", std::process::id()));
        let dir = std::env::temp_dir().join(format!("tacit-keys-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&src);
        let _ = std::fs::remove_dir_all(&dir);
        let pair = KeyRing::generate(&src).unwrap();
        let name = format!("hpke-{}.secret", pair.key_id());
        std::fs::create_dir_all(dir.join("..data")).unwrap();
        std::fs::copy(src.join(&name), dir.join("..data").join(&name)).unwrap();
        let target = dir.join("..data").join(&name);
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o400)).unwrap();
        std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(&name)).unwrap();
        let ring = KeyRing::load(&dir).unwrap();
        assert!(ring.get(&pair.key_id()).is_some());
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(KeyRing::load(&dir), Err(KeyError::Permissions(_))));
        std::fs::remove_dir_all(&src).ok();
        std::fs::remove_dir_all(&dir).ok();
    }
}

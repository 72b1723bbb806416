//! The backend's HPKE key ring: every `hpke-<keyid>.secret` file in the keys
//! directory is a live key (several at once during rotation). `keygen` adds one.
//!
//! Rotation: `keys publish` writes `keylist.json` beside the keys, the list of the
//! ring's public keys with validity periods signed by the offline root key
//! (`tacit_shared::keylist`); the gateway serves it at `GET /v1/keys` and phones that
//! pin the root learn new keys from it. Retire an old key (delete its `.secret`) only
//! after its `not_after`, when no outbox can hold an envelope sealed to it any longer.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use tacit_shared::api::b64_encode;
use tacit_shared::hpke::{KeyId, RecipientKeyPair};
use tacit_shared::keylist::{KEY_LIST_VERSION, KeyList, KeyListError, ListedKey, SignedKeyList};

/// The signed key list's file in the keys directory.
pub const KEY_LIST_FILE: &str = "keylist.json";

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
    /// `keys publish` found no HPKE key in the directory.
    #[error("{0}: no HPKE key to publish (run `tacit-backend keygen`)")]
    NoKeys(PathBuf),
    /// The signed key list is unusable, or could not be signed.
    #[error("{path}: {source}")]
    KeyList {
        /// The list's (or the root key's) file.
        path: PathBuf,
        /// Cause.
        source: KeyListError,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to a new file of mode 0600 (never over an existing one), synced. Shared
/// by every private key file the backend writes (HPKE, root, at-rest).
pub(crate) fn write_new_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Whether nobody but the owner can read `path`. Follows links: a Kubernetes Secret
/// volume presents each key as a symlink into `..data/`; what must be private is the
/// file it points to.
pub(crate) fn is_private(path: &Path) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(std::fs::metadata(path)?.permissions().mode() & 0o077 == 0)
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).map(|_| true)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    write_new_private(path, bytes).map_err(io_error(path))
}

/// The live HPKE private keys, by key id, and the signed list that announces them.
#[derive(Default)]
pub struct KeyRing {
    keys: HashMap<KeyId, RecipientKeyPair>,
    signed_list: Option<SignedKeyList>,
}

impl KeyRing {
    /// Loads every `hpke-*.secret` in `dir` (a missing directory is an empty ring).
    pub fn load(dir: &Path) -> Result<KeyRing, KeyError> {
        let mut keys = HashMap::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(KeyRing {
                    keys,
                    signed_list: None,
                });
            }
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
            if !is_private(&path).map_err(io_error(&path))? {
                return Err(KeyError::Permissions(path));
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
        let list_path = dir.join(KEY_LIST_FILE);
        let signed_list = match std::fs::read(&list_path) {
            Ok(bytes) => {
                Some(
                    SignedKeyList::from_json(&bytes).map_err(|source| KeyError::KeyList {
                        path: list_path.clone(),
                        source,
                    })?,
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(KeyError::Io {
                    path: list_path,
                    source,
                });
            }
        };
        Ok(KeyRing { keys, signed_list })
    }

    /// The signed key list of the directory, served to phones as it is.
    pub fn signed_list(&self) -> Option<&SignedKeyList> {
        self.signed_list.as_ref()
    }

    /// Generates a new key in `dir` (private key mode 0600, public key beside it).
    pub fn generate(dir: &Path) -> Result<RecipientKeyPair, KeyError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let pair = RecipientKeyPair::generate(&SystemRandom::new())
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        let id = pair.key_id().to_hex();
        let secret_path = dir.join(format!("hpke-{id}.secret"));
        write_private(&secret_path, &pair.secret_bytes()[..])?;
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

/// How `keys publish` sets validity periods.
#[derive(Debug, Clone, Copy)]
pub struct PublishPolicy {
    /// A key new to the list becomes valid this long after publishing (ms): phones
    /// learn it before they must use it.
    pub activate_in_ms: u64,
    /// How long a key stays valid after its successor became valid (ms): the longest
    /// an outbox may hold an envelope sealed to it and still have it opened.
    pub overlap_ms: u64,
    /// How long a key without a successor stays valid (ms).
    pub lifetime_ms: u64,
}

impl Default for PublishPolicy {
    fn default() -> Self {
        const DAY: u64 = 86_400_000;
        PublishPolicy {
            activate_in_ms: 0,
            overlap_ms: 30 * DAY,
            lifetime_ms: 400 * DAY,
        }
    }
}

/// Generates an Ed25519 root key (PKCS#8, mode 0600) at `path` and returns its public
/// key, which apps pin. Keep the file offline: only `keys publish` needs it.
pub fn generate_root(path: &Path) -> Result<[u8; 32], KeyError> {
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|e| KeyError::Generate(e.to_string()))?;
    write_private(path, pkcs8.as_ref())?;
    tacit_shared::keylist::root_public_key(pkcs8.as_ref()).map_err(|source| KeyError::KeyList {
        path: path.to_path_buf(),
        source,
    })
}

/// Signs a new key list for the ring in `dir` with the root key file `root` and writes
/// it to `dir/keylist.json`. Keys already listed keep their start; new keys start
/// `policy.activate_in_ms` from `now_ms`; each key ends `policy.overlap_ms` after its
/// successor starts (or `policy.lifetime_ms` after its own start); keys no longer in the
/// directory leave the list. The serial is one more than the previous list's, which
/// must verify under the same root.
pub fn publish(
    dir: &Path,
    root: &Path,
    now_ms: u64,
    policy: PublishPolicy,
) -> Result<KeyList, KeyError> {
    let ring = KeyRing::load(dir)?;
    if ring.is_empty() {
        return Err(KeyError::NoKeys(dir.to_path_buf()));
    }
    let root_pkcs8 = std::fs::read(root).map_err(io_error(root))?;
    let list_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::KeyList { path, source }
    };
    let pinned = tacit_shared::keylist::root_public_key(&root_pkcs8).map_err(list_error(root))?;
    let list_path = dir.join(KEY_LIST_FILE);
    let previous = match ring.signed_list() {
        Some(s) => Some(s.verify(&pinned, 0).map_err(list_error(&list_path))?),
        None => None,
    };
    let start_of = |id: &str| {
        previous
            .as_ref()
            .and_then(|p| p.keys.iter().find(|k| k.key_id == id))
            .map(|k| k.not_before_ms)
    };
    let mut keys: Vec<ListedKey> = ring
        .ids()
        .into_iter()
        .filter_map(|id| ring.get(&id))
        .map(|pair| {
            let key_id = pair.key_id().to_hex();
            let not_before_ms =
                start_of(&key_id).unwrap_or(now_ms.saturating_add(policy.activate_in_ms));
            ListedKey {
                public_key: b64_encode(pair.public_key().as_bytes()),
                not_before_ms,
                not_after_ms: not_before_ms.saturating_add(policy.lifetime_ms),
                key_id,
            }
        })
        .collect();
    keys.sort_by(|a, b| (a.not_before_ms, &a.key_id).cmp(&(b.not_before_ms, &b.key_id)));
    for i in 1..keys.len() {
        let successor_start = keys[i].not_before_ms;
        let k = &mut keys[i - 1];
        k.not_after_ms = k
            .not_after_ms
            .min(successor_start.saturating_add(policy.overlap_ms))
            .max(k.not_before_ms.saturating_add(1));
    }
    let list = KeyList {
        version: KEY_LIST_VERSION,
        serial: previous.map_or(1, |p| p.serial + 1),
        issued_at_ms: now_ms,
        keys,
    };
    let signed = list.sign(&root_pkcs8).map_err(list_error(root))?;
    let tmp = dir.join(format!("{KEY_LIST_FILE}.tmp"));
    std::fs::write(&tmp, signed.to_json()).map_err(io_error(&tmp))?;
    std::fs::rename(&tmp, &list_path).map_err(io_error(&list_path))?;
    Ok(list)
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

    #[test]
    fn publish_rotates_with_overlap_and_keeps_starts() {
        let dir = std::env::temp_dir().join(format!("tacit-keys-pub-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let root = dir.join("root.pk8");
        let pinned = generate_root(&root).unwrap();
        let policy = PublishPolicy {
            activate_in_ms: 1_000,
            overlap_ms: 50_000,
            lifetime_ms: 1_000_000,
        };
        assert!(matches!(
            publish(&dir, &root, 0, policy),
            Err(KeyError::NoKeys(_))
        ));
        let a = KeyRing::generate(&dir).unwrap().key_id().to_hex();
        let l1 = publish(&dir, &root, 10_000, policy).unwrap();
        assert_eq!((l1.serial, l1.keys.len()), (1, 1));
        assert_eq!(
            (l1.keys[0].not_before_ms, l1.keys[0].not_after_ms),
            (11_000, 1_011_000)
        );
        let b = KeyRing::generate(&dir).unwrap().key_id().to_hex();
        let l2 = publish(&dir, &root, 20_000, policy).unwrap();
        assert_eq!(l2.serial, 2);
        let (ka, kb) = (&l2.keys[0], &l2.keys[1]);
        assert_eq!((&ka.key_id, &kb.key_id), (&a, &b));
        assert_eq!(ka.not_before_ms, 11_000, "a listed key keeps its start");
        assert_eq!(kb.not_before_ms, 21_000);
        assert_eq!(
            ka.not_after_ms,
            21_000 + 50_000,
            "old key ends an overlap after"
        );
        // What the gateway serves is the file, and it verifies under the root.
        let served = KeyRing::load(&dir).unwrap();
        assert_eq!(
            served.signed_list().unwrap().verify(&pinned, 2).unwrap(),
            l2
        );
        std::fs::remove_file(dir.join(format!("hpke-{a}.secret"))).unwrap();
        let l3 = publish(&dir, &root, 100_000, policy).unwrap();
        assert_eq!(l3.serial, 3);
        assert_eq!(l3.keys.len(), 1);
        assert_eq!(l3.keys[0].not_before_ms, 21_000);
        // A list signed by another root is not continued.
        let other = dir.join("other.pk8");
        generate_root(&other).unwrap();
        assert!(matches!(
            publish(&dir, &other, 200_000, policy),
            Err(KeyError::KeyList { .. })
        ));
        std::fs::remove_dir_all(&dir).ok();
    }
}

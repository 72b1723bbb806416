//! The built-in device key: Ed25519 (ring), stored as PKCS#8 in the data directory
//! with owner-only permissions. Apps with a hardware key store plug in their own
//! signer instead (the FFI's `DeviceKeyStore`).

use std::io::Write;
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use tacit_shared::identity::{DevicePublicKey, DeviceSigner, Ed25519Signer, IdentityError};

use super::ClientError;

/// File name of the built-in key inside the data directory.
pub const KEY_FILE: &str = "device-ed25519.pk8";

/// Ed25519 signer whose key lives in a file.
pub struct FileKeyStore {
    signer: Ed25519Signer,
    path: PathBuf,
}

impl FileKeyStore {
    /// Loads the key from `dir`, creating it (mode 0600) on first use.
    pub fn open_or_create(dir: &Path) -> Result<Self, ClientError> {
        let path = dir.join(KEY_FILE);
        let signer = match std::fs::read(&path) {
            Ok(pkcs8) => Ed25519Signer::from_pkcs8(&pkcs8)
                .map_err(|e| ClientError::KeyStore(format!("{}: {e}", path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (signer, pkcs8) = Ed25519Signer::generate(&SystemRandom::new())
                    .map_err(|e| ClientError::KeyStore(e.to_string()))?;
                write_private(&path, &pkcs8)
                    .map_err(|e| ClientError::Storage(format!("{}: {e}", path.display())))?;
                signer
            }
            Err(e) => return Err(ClientError::Storage(format!("{}: {e}", path.display()))),
        };
        Ok(FileKeyStore { signer, path })
    }

    /// Where the key is stored.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Writes a file readable only by its owner, atomically (temp file + rename), so a
/// crash never leaves half a key behind.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

impl DeviceSigner for FileKeyStore {
    fn public_key(&self) -> DevicePublicKey {
        self.signer.public_key()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, IdentityError> {
        self.signer.sign(message)
    }
}

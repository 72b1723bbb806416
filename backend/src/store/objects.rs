//! Feature batches as objects: one pack ([`super::pack`]) per group commit, under
//! `features/{user_id}/{device_hex}/{first_sequence:020}-{pack_hex}.pack`; objects of
//! the older layout (one envelope each, `…/{sequence:020}-{envelope_hex}.bin`) are
//! still read.
//!
//! The user id leads the key so that deleting a user is one prefix listing, and the
//! sequence is zero-padded so that a device's objects list in sequence order.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

use super::at_rest::AtRestKeys;
use super::config::S3Config;
use super::error::{StoreError, StoreResult, from_object_store};
use super::model::validate_user_id;
use super::pack::{self, PackEntry};

/// Top-level prefix of all feature objects.
const FEATURES: &str = "features";

/// Size from which an object goes to S3 in parts (S3's minimum part is 5 MiB).
pub const MULTIPART_FROM: usize = 8 << 20;

/// Where the feature objects live: a directory or an S3 bucket (or any other
/// `object_store` implementation, for tests).
#[derive(Clone, Debug)]
pub struct FeatureObjects {
    store: Arc<dyn ObjectStore>,
    /// The directory of a [`LocalFileSystem`], whose writes need an explicit fsync.
    local: Option<Arc<LocalFileSystem>>,
    /// The directory itself, which must keep existing (a missing bucket fails a
    /// listing, a missing directory lists as empty).
    local_root: Option<PathBuf>,
    /// Directories below the root whose own entry is known to be durable (their parent
    /// was fsynced after they were created): a write into a known device directory
    /// fsyncs the file and that directory only, not every directory up to the root.
    durable_dirs: Arc<std::sync::Mutex<DurableDirs>>,
    /// Encryption of features (and, through the SQL store, templates) at rest.
    at_rest: Option<Arc<AtRestKeys>>,
    /// The S3 bucket the objects are in (`None`: a directory or another store), which
    /// `s3://BUCKET/KEY` paths of the factor job API must name.
    bucket: Option<String>,
}

impl FeatureObjects {
    /// A directory on the local file system (created if missing). Writes are fsynced
    /// before [`Store::store_envelope`](super::Store::store_envelope) returns, and
    /// directories emptied by deletions are removed.
    pub fn local(root: impl AsRef<FsPath>) -> StoreResult<Self> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(|e| {
            StoreError::internal(format!("creating object directory {}", root.display()), e)
        })?;
        // Feature objects are biometric data: only the service's user may list or read
        // them (the files below are 0600 too, but the directories LocalFileSystem
        // creates follow the umask).
        owner_only(root, 0o700).map_err(|e| {
            StoreError::internal(
                format!("restricting object directory {}", root.display()),
                e,
            )
        })?;
        // Canonical, because LocalFileSystem maps keys below the canonical path and the
        // fsync walk compares against it.
        let root = std::fs::canonicalize(root).map_err(|e| {
            StoreError::internal(format!("resolving object directory {}", root.display()), e)
        })?;
        let fs = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| from_object_store("opening object directory", e))?
            .with_automatic_cleanup(true);
        let fs = Arc::new(fs);
        Ok(FeatureObjects {
            store: fs.clone(),
            local: Some(fs),
            local_root: Some(root),
            durable_dirs: Arc::default(),
            at_rest: None,
            bucket: None,
        })
    }

    /// An S3 bucket (or an S3-compatible server) with path-style requests.
    pub fn s3(config: &S3Config) -> StoreResult<Self> {
        // Credentials and region not given in `config` come from the usual AWS_*
        // environment variables (`from_env`).
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(config.allow_http)
            // The default retries for three minutes; a gateway request should fail
            // over to a 503 long before its client gives up.
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(10),
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &config.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &config.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &config.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let s3 = builder
            .build()
            .map_err(|e| from_object_store("configuring S3", e))?;
        let mut objects = Self::from_object_store(Arc::new(s3));
        objects.bucket = Some(config.bucket.clone());
        Ok(objects)
    }

    /// Any other object store (for example `object_store::memory::InMemory` in tests).
    /// Writes are durable when the store's `put` is.
    pub fn from_object_store(store: Arc<dyn ObjectStore>) -> Self {
        FeatureObjects {
            store,
            local: None,
            local_root: None,
            durable_dirs: Arc::default(),
            at_rest: None,
            bucket: None,
        }
    }

    /// The S3 bucket the objects are in, if they are in one.
    pub fn bucket(&self) -> Option<&str> {
        self.bucket.as_deref()
    }

    /// The store key a job file names: a store key (`features/USER/...`) as it is, or
    /// `s3://BUCKET/KEY` where BUCKET is this store's bucket. Only feature objects can be
    /// named (never models, job records or the at-rest marker), and no segment may be
    /// empty, `.` or `..`: a path cannot escape the features prefix.
    pub fn job_file_key(&self, file: &str) -> Result<String, String> {
        let key = if let Some(rest) = file.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            match self.bucket() {
                Some(b) if b == bucket => key,
                Some(b) => {
                    return Err(format!(
                        "{file:?}: bucket {bucket:?} is not this service's bucket ({b:?})"
                    ));
                }
                None => {
                    return Err(format!(
                        "{file:?}: this service's objects are not in an S3 bucket; name the store key (features/...)"
                    ));
                }
            }
        } else if file.contains("://") {
            return Err(format!(
                "{file:?}: only s3://BUCKET/KEY and store keys are accepted"
            ));
        } else {
            file
        };
        let segments: Vec<&str> = key.split('/').collect();
        if segments.first() != Some(&FEATURES)
            || segments.len() < 3
            || segments
                .iter()
                .any(|p| p.is_empty() || *p == "." || *p == ".." || p.contains('\\'))
            || validate_user_id(segments[1]).is_err()
        {
            return Err(format!(
                "{file:?} is not a feature object (features/USER/...)"
            ));
        }
        Ok(key.to_owned())
    }

    /// Encrypts features written from now on and decrypts what [`Self::read`]
    /// returns (`store::at_rest`); the SQL store encrypts templates with the same keys.
    pub fn with_at_rest(mut self, keys: Option<Arc<AtRestKeys>>) -> Self {
        self.at_rest = keys;
        self
    }

    /// The at-rest keys, when encryption is on.
    pub fn at_rest(&self) -> Option<&AtRestKeys> {
        self.at_rest.as_deref()
    }

    /// The at-rest keys, shared (a factor service seals its job records with them).
    pub fn at_rest_keys(&self) -> Option<Arc<AtRestKeys>> {
        self.at_rest.clone()
    }

    /// The underlying object store, for readers of the features (training).
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The key of an envelope's features.
    pub fn feature_key(
        user_id: &str,
        device_id: &[u8; 16],
        sequence: u64,
        envelope_id: &[u8; 16],
    ) -> StoreResult<String> {
        validate_user_id(user_id)?;
        Ok(format!(
            "{FEATURES}/{user_id}/{}/{sequence:020}-{}.bin",
            hex::encode(device_id),
            hex::encode(envelope_id)
        ))
    }

    /// The key of a pack of a device's envelopes, the first of which has
    /// `first_sequence`; `pack_id` is random, so that a retried commit never writes
    /// over the pack of another.
    pub fn pack_key(
        user_id: &str,
        device_id: &[u8; 16],
        first_sequence: u64,
        pack_id: &[u8; 16],
    ) -> StoreResult<String> {
        validate_user_id(user_id)?;
        Ok(format!(
            "{FEATURES}/{user_id}/{}/{first_sequence:020}-{}{}",
            hex::encode(device_id),
            hex::encode(pack_id),
            pack::PACK_SUFFIX
        ))
    }

    /// Writes a pack of envelopes' features as one object and returns once it is
    /// durable.
    pub async fn put_pack_durable(
        &self,
        key: &str,
        entries: &[(&[u8; 16], &[u8])],
    ) -> StoreResult<()> {
        self.put_durable(key, pack::encode_parts(entries)?).await
    }

    /// The envelopes' features in a feature object: every entry of a pack (`.pack`),
    /// or the one payload of any other object (the id from its name, zero without one).
    pub async fn read_entries(&self, key: &str) -> StoreResult<Vec<PackEntry>> {
        let bytes = self.read(key).await?;
        if key.ends_with(pack::PACK_SUFFIX) {
            return pack::decode(&bytes);
        }
        // Any other object under `features/` (the older layout, or a file a factor's
        // job names) is one payload; its id is in its name when it has one.
        Ok(vec![PackEntry {
            envelope_id: pack::single_envelope_id(key).unwrap_or_default(),
            payload: bytes,
        }])
    }

    /// One envelope's features from the object its row names.
    /// [`StoreError::NotFound`] when the object is gone or does not hold it.
    pub async fn read_envelope(&self, key: &str, envelope_id: &[u8; 16]) -> StoreResult<Vec<u8>> {
        self.read_entries(key)
            .await?
            .into_iter()
            .find(|e| &e.envelope_id == envelope_id)
            .map(|e| e.payload)
            .ok_or(StoreError::NotFound("envelope in its feature object"))
    }

    /// Writes a feature object (encrypted when encryption at rest is on) and returns
    /// once it is durable. Objects over [`MULTIPART_FROM`] go up in parts.
    pub async fn put_durable(&self, key: &str, bytes: Vec<u8>) -> StoreResult<()> {
        let location = parse_key(key)?;
        let bytes = match &self.at_rest {
            Some(k) => k.seal(key, &bytes)?,
            None => bytes,
        };
        if bytes.len() >= MULTIPART_FROM && self.local.is_none() {
            // A large pack (many big batches) in parts: S3 caps a single PUT at 5 GiB
            // and retries a failed part, not the whole object.
            let mut upload = self
                .store
                .put_multipart(&location)
                .await
                .map_err(|e| from_object_store("starting a multipart write", e))?;
            let mut written = Ok(());
            for part in bytes.chunks(MULTIPART_FROM) {
                written = upload.put_part(PutPayload::from(part.to_vec())).await;
                if written.is_err() {
                    break;
                }
            }
            if written.is_ok() {
                written = upload.complete().await.map(|_| ());
            }
            if let Err(e) = written {
                // Parts of an unfinished upload are invisible to listings, so neither
                // a user's deletion nor a sweep would find them: abort it now.
                let _ = upload.abort().await;
                return Err(from_object_store("writing feature object in parts", e));
            }
            return Ok(());
        }
        self.store
            .put(&location, PutPayload::from(bytes))
            .await
            .map_err(|e| from_object_store("writing feature object", e))?;
        if let Some(fs) = &self.local {
            // LocalFileSystem renames a staged file into place without fsync; a power
            // loss could then lose features whose row the database already holds.
            let file = fs
                .path_to_filesystem(&location)
                .map_err(|e| from_object_store("locating feature object", e))?;
            let root = self.local_root.clone().unwrap_or_default();
            let known = self.durable_dirs.clone();
            tokio::task::spawn_blocking(move || sync_file_and_parents(&file, &root, &known))
                .await
                .map_err(|e| StoreError::internal("fsync task", e))?
                .map_err(|e| StoreError::unavailable("fsync of feature object", e))?;
        }
        Ok(())
    }

    /// Reads a feature object (decrypted when encryption at rest is on).
    pub async fn read(&self, key: &str) -> StoreResult<Vec<u8>> {
        let bytes = self.read_raw(key).await?;
        match &self.at_rest {
            Some(k) => k.open(key, &bytes),
            None => Ok(bytes),
        }
    }

    /// Reads an object that is sealed when it was written with encryption at rest on
    /// (model artifacts and their manifests, written by the registry), or plaintext
    /// (an artifact an operator copied in by hand). A sealed object without a key is
    /// an error, never returned as it is.
    pub async fn read_maybe_sealed(&self, key: &str) -> StoreResult<Vec<u8>> {
        let bytes = self.read_raw(key).await?;
        if !super::at_rest::is_encrypted(&bytes) {
            return Ok(bytes);
        }
        match &self.at_rest {
            Some(k) => k.open(key, &bytes),
            None => Err(StoreError::Invalid(format!(
                "{key} is encrypted at rest and no at-rest key is configured"
            ))),
        }
    }

    /// Reads an object as stored.
    pub async fn read_raw(&self, key: &str) -> StoreResult<Vec<u8>> {
        let location = parse_key(key)?;
        let got = self
            .store
            .get(&location)
            .await
            .map_err(|e| from_object_store("reading feature object", e))?;
        let bytes = got
            .bytes()
            .await
            .map_err(|e| from_object_store("reading feature object", e))?;
        Ok(bytes.to_vec())
    }

    /// Reads the at-rest marker ([`at_rest::MARKER_KEY`](super::at_rest::MARKER_KEY))
    /// and applies it to the keys. Returns whether there is one. With encryption at rest
    /// off, a marker means the store is encrypted: that is an error (its data would not
    /// read, and new data would be stored unencrypted beside it), not a silent fallback.
    pub async fn apply_at_rest_marker(&self) -> StoreResult<bool> {
        use super::at_rest::{MARKER_KEY, Marker};
        let blob = match self.read_raw(MARKER_KEY).await {
            Ok(b) => b,
            Err(StoreError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        let Some(keys) = &self.at_rest else {
            return Err(StoreError::Invalid(format!(
                "the store is encrypted at rest (it holds {MARKER_KEY}) but no at-rest key \
                 is configured: set TACIT_AT_REST_KEY_FILE to its key"
            )));
        };
        let marker: Marker = serde_json::from_slice(&keys.open(MARKER_KEY, &blob)?)
            .map_err(|e| StoreError::internal(format!("{MARKER_KEY} does not decode"), e))?;
        if !keys.sealed_with_current(&blob) {
            // Sealed under a key that has since been rotated out of writing: seal it
            // again under the current one before the old key is retired.
            self.put_at_rest_marker(keys, &marker).await?;
        }
        use_at_rest_marker(keys, &marker);
        Ok(true)
    }

    /// Writes the at-rest marker (sealed under the current key) and applies it. No-op
    /// without encryption at rest.
    pub async fn write_at_rest_marker(&self, plaintext_before: bool) -> StoreResult<()> {
        let Some(keys) = &self.at_rest else {
            return Ok(());
        };
        let marker = super::at_rest::Marker {
            plaintext_before,
            since_ms: super::sql::now_ms(),
        };
        self.put_at_rest_marker(keys, &marker).await?;
        use_at_rest_marker(keys, &marker);
        Ok(())
    }

    async fn put_at_rest_marker(
        &self,
        keys: &AtRestKeys,
        marker: &super::at_rest::Marker,
    ) -> StoreResult<()> {
        use super::at_rest::MARKER_KEY;
        let json = serde_json::to_vec(marker)
            .map_err(|e| StoreError::internal("encoding the at-rest marker", e))?;
        self.store
            .put(
                &parse_key(MARKER_KEY)?,
                PutPayload::from(keys.seal(MARKER_KEY, &json)?),
            )
            .await
            .map_err(|e| from_object_store("writing the at-rest marker", e))?;
        Ok(())
    }

    /// Deletes an object; a missing one is not an error (deletes are retried).
    pub(crate) async fn delete(&self, key: &str) -> StoreResult<()> {
        let location = parse_key(key)?;
        self.forget_durable_dirs();
        match self.store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(from_object_store("deleting feature object", e)),
        }
    }

    /// A deletion may remove directories it empties (and a later write create them
    /// anew): no directory is known durable any more.
    fn forget_durable_dirs(&self) {
        if let Ok(mut k) = self.durable_dirs.lock() {
            k.generation += 1;
            k.known.clear();
        }
    }

    /// Every feature object key of a user, sorted.
    pub async fn list_user(&self, user_id: &str) -> StoreResult<Vec<String>> {
        let prefix = user_prefix(user_id)?;
        let mut keys: Vec<String> = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .map_err(|e| from_object_store("listing feature objects", e))?;
        keys.sort();
        Ok(keys)
    }

    /// Deletes every feature object of a user; returns how many there were.
    pub(crate) async fn delete_user(&self, user_id: &str) -> StoreResult<u64> {
        // List first, then delete: deleting while paging through a listing could skip
        // keys on some stores.
        let keys = self.list_user(user_id).await?;
        self.forget_durable_dirs();
        let count = keys.len() as u64;
        let locations = futures::stream::iter(keys.into_iter().map(|k| Ok(Path::from(k))));
        let mut results = self.store.delete_stream(locations.boxed());
        while let Some(result) = results.next().await {
            match result {
                // Gone already: a concurrent deletion of the same user.
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(from_object_store("deleting feature objects", e)),
            }
        }
        Ok(count)
    }

    /// Checks that the store answers: one listing request (fails on a missing bucket,
    /// bad credentials or an unreachable endpoint) and, for a directory, that it exists.
    pub async fn health(&self) -> StoreResult<()> {
        if let Some(root) = &self.local_root
            && !root.is_dir()
        {
            return Err(StoreError::unavailable(
                "object directory",
                format!("{} is not a directory", root.display()),
            ));
        }
        self.store
            .list_with_delimiter(Some(&Path::from(FEATURES)))
            .await
            .map(|_| ())
            // Whatever the store answers (even 404 for a missing bucket) means it is
            // not usable: 503, not the error's usual class.
            .map_err(|e| StoreError::unavailable("listing the object store", e))
    }
}

fn user_prefix(user_id: &str) -> StoreResult<Path> {
    validate_user_id(user_id)?;
    Ok(Path::from(format!("{FEATURES}/{user_id}")))
}

fn parse_key(key: &str) -> StoreResult<Path> {
    Path::parse(key).map_err(|e| StoreError::Invalid(format!("object key {key:?}: {e}")))
}

/// Tells the keys what the store's marker says.
fn use_at_rest_marker(keys: &AtRestKeys, marker: &super::at_rest::Marker) {
    keys.set_plaintext_before(marker.plaintext_before);
    if marker.plaintext_before {
        tracing::warn!(
            "this store held unencrypted data when encryption at rest was turned on: \
             blobs without the encryption header are read as that older data"
        );
    }
}

/// fsyncs a file and every directory from its parent up to `root`, so that both the
/// content and the (possibly new) directory entries survive a crash.
/// Sets `path`'s mode (Unix; elsewhere nothing to do).
pub(crate) fn owner_only(path: &FsPath, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// Most directories remembered as durable; past it the set starts again (each device
/// directory then costs one full walk more).
const MAX_DURABLE_DIRS: usize = 65_536;

/// The directories known durable, and a generation that every deletion advances: a
/// walk that began before a deletion (which may remove directories) adds nothing.
#[derive(Debug, Default)]
struct DurableDirs {
    generation: u64,
    known: std::collections::HashSet<PathBuf>,
}

fn sync_file_and_parents(
    file: &FsPath,
    root: &FsPath,
    dirs: &std::sync::Mutex<DurableDirs>,
) -> std::io::Result<()> {
    let generation = dirs.lock().map(|d| d.generation).unwrap_or(u64::MAX);
    // Readable by the service's user only (LocalFileSystem creates files by the umask).
    owner_only(file, 0o600)?;
    std::fs::File::open(file)?.sync_all()?;
    let is_known = |d: &FsPath| dirs.lock().map(|k| k.known.contains(d)).unwrap_or(false);
    // `below`: the directory whose entry the next sync makes durable.
    let mut below: Option<&FsPath> = None;
    let mut dir = file.parent();
    while let Some(d) = dir {
        std::fs::File::open(d)?.sync_all()?;
        if let Some(b) = below
            && let Ok(mut k) = dirs.lock()
            && k.generation == generation
        {
            if k.known.len() >= MAX_DURABLE_DIRS {
                k.known.clear();
            }
            k.known.insert(b.to_path_buf());
        }
        // At the root, or `d`'s own entry was made durable before: done.
        if d == root || !d.starts_with(root) || is_known(d) {
            break;
        }
        below = Some(d);
        dir = d.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_files_name_feature_objects_of_this_bucket_only() {
        let mut s3 =
            FeatureObjects::from_object_store(Arc::new(object_store::memory::InMemory::new()));
        s3.bucket = Some("feat".into());
        let key = "features/u1/dev/00000000000000000001-ab.bin";
        assert_eq!(s3.job_file_key(key).as_deref(), Ok(key));
        assert_eq!(
            s3.job_file_key(&format!("s3://feat/{key}")).as_deref(),
            Ok(key)
        );
        for bad in [
            format!("s3://other/{key}"),
            format!("s3://feat2/{key}"),
            format!("gs://feat/{key}"),
            format!("file:///{key}"),
            "s3://feat".into(),
            "s3://feat/".into(),
            "s3://feat/features/u1/../../models/gait.tcm".into(),
            "features/u1/./x.bin".into(),
            "features//x/y.bin".into(),
            "features/u1".into(),
            "models/gait.tcm".into(),
            "features/-bad-user/d/x.bin".into(),
            "features/u1/d\\..\\x.bin".into(),
        ] {
            assert!(s3.job_file_key(&bad).is_err(), "{bad}");
        }
        // A directory store has no bucket: every s3:// path is refused, keys are fine.
        let dir =
            FeatureObjects::from_object_store(Arc::new(object_store::memory::InMemory::new()));
        assert!(dir.job_file_key(&format!("s3://feat/{key}")).is_err());
        assert_eq!(dir.job_file_key(key).as_deref(), Ok(key));
    }

    #[test]
    fn keys() {
        let key = FeatureObjects::feature_key("u1", &[0xab; 16], 42, &[1; 16]).ok();
        assert_eq!(
            key.as_deref(),
            Some(
                "features/u1/abababababababababababababababab/00000000000000000042-01010101010101010101010101010101.bin"
            )
        );
        assert!(FeatureObjects::feature_key("../x", &[0; 16], 0, &[0; 16]).is_err());
        // u64::MAX still fits the 20-digit field, so keys sort by sequence.
        let max = FeatureObjects::feature_key("u", &[0; 16], u64::MAX, &[0; 16]).ok();
        assert!(max.is_some_and(|k| k.contains("/18446744073709551615-")));
    }
}

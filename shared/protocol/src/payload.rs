//! The plaintext inside an envelope: a batch of feature records (see `PROTOCOL.md`).
//! Only features travel; raw sensor samples and typed characters never do.

use crate::schema::{self, SchemaError};
use crate::wire::Reader;

/// Payload format version.
pub const PAYLOAD_VERSION: u8 = 1;
/// Most records one payload may carry.
pub const MAX_RECORDS: usize = 1024;
/// Most values one record may carry.
pub const MAX_VALUES: usize = 1024;
/// Encoded size of a record without its values.
pub const RECORD_OVERHEAD: usize = 1 + 2 + 8 + 4 + 16 + 2;
/// Wire tag of a face image record (a camera frame for the backend's face factor, which
/// turns it into a [`FactorKind::Face`] record; see [`FaceImage`]). Outside the factor
/// tags, so a backend that predates it refuses the envelope as `invalid_payload`.
pub const FACE_IMAGE_TAG: u8 = 16;
/// Most face images one payload may carry.
pub const MAX_FACE_IMAGES: usize = 4;
/// Largest encoded face image (bytes).
pub const MAX_FACE_IMAGE_BYTES: usize = 96 * 1024;
/// Smallest encoded face image (bytes): no JPEG holding a face is smaller.
pub const MIN_FACE_IMAGE_BYTES: usize = 128;
/// Longest side of a face image, in pixels (the phone downscales to it; the factor's
/// detector needs a face of about 80 pixels, which a frame of this size holds when the
/// face fills a fifth of it).
pub const MAX_FACE_IMAGE_SIDE: u32 = 640;
/// Encoded size of a face image record without its bytes.
pub const FACE_IMAGE_OVERHEAD: usize = 1 + 2 + 8 + 4;

/// The behavioural factor a record belongs to. The discriminant is the wire tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum FactorKind {
    /// Gait: one record per walking window.
    Gait = 1,
    /// Keystroke timings of one entry of a fixed phrase (password, PIN).
    KeystrokeFixed = 2,
    /// Keystroke digraph statistics of free typing.
    KeystrokeFree = 3,
    /// Face: one record per accepted face image, its embedding, quality and image hash
    /// (written by the gateway from the face factor's answer; never the image).
    Face = 4,
}

impl FactorKind {
    /// Every factor, in wire-tag order.
    pub const ALL: [FactorKind; 4] = [
        FactorKind::Gait,
        FactorKind::KeystrokeFixed,
        FactorKind::KeystrokeFree,
        FactorKind::Face,
    ];

    /// Parses a wire tag.
    pub fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(FactorKind::Gait),
            2 => Some(FactorKind::KeystrokeFixed),
            3 => Some(FactorKind::KeystrokeFree),
            4 => Some(FactorKind::Face),
            _ => None,
        }
    }

    /// The factor's one name: in URLs, settings, metrics, model paths, JSON and logs
    /// (`gait`, `keystroke-fixed`, `keystroke-free`, `face`). Lower case and `-` only, so it is
    /// also a valid DNS label (Kubernetes object names, hosts).
    pub fn name(self) -> &'static str {
        match self {
            FactorKind::Gait => "gait",
            FactorKind::KeystrokeFixed => "keystroke-fixed",
            FactorKind::KeystrokeFree => "keystroke-free",
            FactorKind::Face => "face",
        }
    }

    /// Spellings written by earlier versions, still read wherever names were persisted
    /// (settings files, model artifact headers, exports): `keystroke_fixed`,
    /// `keystroke_free` (the protocol's old names) and `keystroke` (the old short name of
    /// the fixed-phrase factor). Never written.
    fn from_old_name(name: &str) -> Option<Self> {
        match name {
            "keystroke_fixed" | "keystroke" => Some(FactorKind::KeystrokeFixed),
            "keystroke_free" => Some(FactorKind::KeystrokeFree),
            _ => None,
        }
    }
}

impl std::fmt::Display for FactorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a factor's (see [`FactorKind::name`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown factor {0:?} (expected gait, keystroke-fixed, keystroke-free or face)")]
pub struct UnknownFactor(pub String);

impl std::str::FromStr for FactorKind {
    type Err = UnknownFactor;

    /// The canonical name, or one of the old spellings (see [`FactorKind::name`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FactorKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .or_else(|| FactorKind::from_old_name(s))
            .ok_or_else(|| UnknownFactor(s.to_string()))
    }
}

impl serde::Serialize for FactorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for FactorKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// One feature vector with its provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRecord {
    /// Which factor produced it.
    pub factor: FactorKind,
    /// Schema version of `values` (see [`crate::schema`]).
    pub schema_version: u16,
    /// Start of the observed window, Unix milliseconds (device clock).
    pub window_start_ms: u64,
    /// Length of the observed window in milliseconds.
    pub window_ms: u32,
    /// Context identifier: the salted phrase hash for fixed-text keystrokes, `None`
    /// otherwise.
    pub context: Option<[u8; 16]>,
    /// The feature values, in schema order.
    pub values: Vec<f32>,
}

impl FeatureRecord {
    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        RECORD_OVERHEAD + 4 * self.values.len()
    }

    /// Checks the record against its schema.
    pub fn validate(&self) -> Result<(), SchemaError> {
        schema::validate(
            self.factor,
            self.schema_version,
            &self.values,
            self.context.is_some(),
        )
    }
}

/// Encoding of a [`FaceImage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ImageFormat {
    /// Baseline JPEG, orientation applied (no EXIF), longest side at most
    /// [`MAX_FACE_IMAGE_SIDE`].
    Jpeg = 1,
}

impl ImageFormat {
    /// Parses a wire value.
    pub fn from_wire(v: u16) -> Option<Self> {
        (v == 1).then_some(ImageFormat::Jpeg)
    }
}

/// A camera frame for the face factor: the phone normalised it (orientation, size,
/// re-encoding) and seals it like every other record. The gateway hands it to the face
/// factor, stores only the [`FactorKind::Face`] record it gets back and never the
/// image.
#[derive(Clone, PartialEq)]
pub struct FaceImage {
    /// How `bytes` are encoded.
    pub format: ImageFormat,
    /// When the frame was taken, Unix milliseconds (device clock).
    pub captured_at_ms: u64,
    /// The encoded image, [`MIN_FACE_IMAGE_BYTES`]..=[`MAX_FACE_IMAGE_BYTES`] bytes.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for FaceImage {
    /// The image bytes are biometric data: never printed, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceImage")
            .field("format", &self.format)
            .field("captured_at_ms", &self.captured_at_ms)
            .field("bytes", &format_args!("<{} bytes>", self.bytes.len()))
            .finish()
    }
}

impl FaceImage {
    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        FACE_IMAGE_OVERHEAD + self.bytes.len()
    }
}

/// Why a payload was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    /// The payload ended early.
    #[error("payload truncated")]
    Truncated,
    /// Bytes left after the last record.
    #[error("{0} trailing bytes after the last record")]
    TrailingBytes(usize),
    /// Unknown payload version.
    #[error("unsupported payload version {0}")]
    UnsupportedVersion(u8),
    /// Zero records, or more than [`MAX_RECORDS`].
    #[error("record count {0} outside 1..={MAX_RECORDS}")]
    RecordCount(usize),
    /// A record declares more than [`MAX_VALUES`] values (or none).
    #[error("record {index}: value count {count} outside 1..={MAX_VALUES}")]
    ValueCount {
        /// Record index.
        index: usize,
        /// Declared count.
        count: usize,
    },
    /// Unknown factor tag.
    #[error("record {index}: unknown factor tag {tag}")]
    UnknownFactor {
        /// Record index.
        index: usize,
        /// The tag.
        tag: u8,
    },
    /// More than [`MAX_FACE_IMAGES`] face images.
    #[error("{0} face images, at most {MAX_FACE_IMAGES}")]
    FaceImageCount(usize),
    /// A face image of an unknown format, or of a size outside
    /// [`MIN_FACE_IMAGE_BYTES`]..=[`MAX_FACE_IMAGE_BYTES`].
    #[error("record {index}: face image {what}")]
    FaceImage {
        /// Record index.
        index: usize,
        /// What is wrong.
        what: String,
    },
    /// The record does not fit its schema.
    #[error("record {index}: {source}")]
    Schema {
        /// Record index.
        index: usize,
        /// What is wrong.
        source: SchemaError,
    },
}

/// A batch of feature records (and face images): the plaintext of one envelope.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Payload {
    /// The feature records.
    pub records: Vec<FeatureRecord>,
    /// Face images, at most [`MAX_FACE_IMAGES`]; encoded after the feature records.
    /// Never stored: the gateway replaces them by face records before it stores the
    /// payload.
    pub face_images: Vec<FaceImage>,
}

impl Payload {
    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        3 + self
            .records
            .iter()
            .map(FeatureRecord::encoded_len)
            .sum::<usize>()
            + self
                .face_images
                .iter()
                .map(FaceImage::encoded_len)
                .sum::<usize>()
    }

    /// Encodes the payload. Validates every record first, so a phone never seals
    /// something the backend would reject.
    pub fn encode(&self) -> Result<Vec<u8>, PayloadError> {
        self.check()?;
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(PAYLOAD_VERSION);
        let count = self.records.len() + self.face_images.len();
        out.extend_from_slice(&(count as u16).to_be_bytes());
        for r in &self.records {
            out.push(r.factor as u8);
            out.extend_from_slice(&r.schema_version.to_be_bytes());
            out.extend_from_slice(&r.window_start_ms.to_be_bytes());
            out.extend_from_slice(&r.window_ms.to_be_bytes());
            out.extend_from_slice(&r.context.unwrap_or([0; 16]));
            out.extend_from_slice(&(r.values.len() as u16).to_be_bytes());
            for v in &r.values {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        for im in &self.face_images {
            out.push(FACE_IMAGE_TAG);
            out.extend_from_slice(&(im.format as u16).to_be_bytes());
            out.extend_from_slice(&im.captured_at_ms.to_be_bytes());
            out.extend_from_slice(&(im.bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(&im.bytes);
        }
        Ok(out)
    }

    fn check(&self) -> Result<(), PayloadError> {
        let count = self.records.len() + self.face_images.len();
        if count == 0 || count > MAX_RECORDS {
            return Err(PayloadError::RecordCount(count));
        }
        if self.face_images.len() > MAX_FACE_IMAGES {
            return Err(PayloadError::FaceImageCount(self.face_images.len()));
        }
        for (k, im) in self.face_images.iter().enumerate() {
            check_image_len(self.records.len() + k, im.bytes.len())?;
        }
        for (index, r) in self.records.iter().enumerate() {
            if r.values.is_empty() || r.values.len() > MAX_VALUES {
                return Err(PayloadError::ValueCount {
                    index,
                    count: r.values.len(),
                });
            }
            r.validate()
                .map_err(|source| PayloadError::Schema { index, source })?;
        }
        Ok(())
    }

    /// Strictly decodes and validates a payload: every length is bounded, unknown
    /// versions and factors are rejected, trailing bytes are rejected, and every record
    /// must fit its schema.
    pub fn decode(bytes: &[u8]) -> Result<Payload, PayloadError> {
        let mut r = Reader::new(bytes);
        let version = r.u8().ok_or(PayloadError::Truncated)?;
        if version != PAYLOAD_VERSION {
            return Err(PayloadError::UnsupportedVersion(version));
        }
        let count = r.u16().ok_or(PayloadError::Truncated)? as usize;
        if count == 0 || count > MAX_RECORDS {
            return Err(PayloadError::RecordCount(count));
        }
        // Each record needs at least RECORD_OVERHEAD + 4 bytes: refuse a count that
        // cannot fit before allocating for it.
        if count * (RECORD_OVERHEAD + 4) > r.remaining() {
            return Err(PayloadError::Truncated);
        }
        let mut records = Vec::with_capacity(count);
        let mut face_images = Vec::new();
        for index in 0..count {
            let tag = r.u8().ok_or(PayloadError::Truncated)?;
            if tag == FACE_IMAGE_TAG {
                if face_images.len() == MAX_FACE_IMAGES {
                    return Err(PayloadError::FaceImageCount(MAX_FACE_IMAGES + 1));
                }
                let format = r.u16().ok_or(PayloadError::Truncated)?;
                let format = ImageFormat::from_wire(format).ok_or(PayloadError::FaceImage {
                    index,
                    what: format!("format {format} unknown"),
                })?;
                let captured_at_ms = r.u64().ok_or(PayloadError::Truncated)?;
                let len = r.u32().ok_or(PayloadError::Truncated)? as usize;
                check_image_len(index, len)?;
                let bytes = r.bytes(len).ok_or(PayloadError::Truncated)?.to_vec();
                face_images.push(FaceImage {
                    format,
                    captured_at_ms,
                    bytes,
                });
                continue;
            }
            // One encoding: face images come after every feature record.
            if !face_images.is_empty() {
                return Err(PayloadError::FaceImage {
                    index,
                    what: "is followed by a feature record (images come last)".into(),
                });
            }
            let factor =
                FactorKind::from_tag(tag).ok_or(PayloadError::UnknownFactor { index, tag })?;
            let schema_version = r.u16().ok_or(PayloadError::Truncated)?;
            let window_start_ms = r.u64().ok_or(PayloadError::Truncated)?;
            let window_ms = r.u32().ok_or(PayloadError::Truncated)?;
            let ctx: [u8; 16] = r.array().ok_or(PayloadError::Truncated)?;
            let n = r.u16().ok_or(PayloadError::Truncated)? as usize;
            if n == 0 || n > MAX_VALUES {
                return Err(PayloadError::ValueCount { index, count: n });
            }
            if n * 4 > r.remaining() {
                return Err(PayloadError::Truncated);
            }
            let mut values = Vec::with_capacity(n);
            for _ in 0..n {
                values.push(r.f32().ok_or(PayloadError::Truncated)?);
            }
            let record = FeatureRecord {
                factor,
                schema_version,
                window_start_ms,
                window_ms,
                context: (ctx != [0; 16]).then_some(ctx),
                values,
            };
            record
                .validate()
                .map_err(|source| PayloadError::Schema { index, source })?;
            records.push(record);
        }
        if r.remaining() != 0 {
            return Err(PayloadError::TrailingBytes(r.remaining()));
        }
        Ok(Payload {
            records,
            face_images,
        })
    }
}

fn check_image_len(index: usize, len: usize) -> Result<(), PayloadError> {
    if (MIN_FACE_IMAGE_BYTES..=MAX_FACE_IMAGE_BYTES).contains(&len) {
        Ok(())
    } else {
        Err(PayloadError::FaceImage {
            index,
            what: format!(
                "of {len} bytes, outside {MIN_FACE_IMAGE_BYTES}..={MAX_FACE_IMAGE_BYTES}"
            ),
        })
    }
}

//! Face image records: they round-trip after the feature records, every bound is
//! enforced on both sides, and their bytes never reach a debug print.

use tacit_shared::payload::{
    FACE_IMAGE_TAG, FaceImage, FactorKind, FeatureRecord, ImageFormat, MAX_FACE_IMAGE_BYTES,
    MAX_FACE_IMAGES, MIN_FACE_IMAGE_BYTES, Payload, PayloadError,
};

fn gait() -> FeatureRecord {
    let mut values = vec![0.1f32; 50];
    values[0] = 1.8;
    FeatureRecord {
        factor: FactorKind::Gait,
        schema_version: 1,
        window_start_ms: 1_700_000_000_000,
        window_ms: 5_120,
        context: None,
        values,
    }
}

fn image(len: usize, fill: u8) -> FaceImage {
    FaceImage {
        format: ImageFormat::Jpeg,
        captured_at_ms: 1_700_000_001_000,
        bytes: vec![fill; len],
    }
}

#[test]
fn images_round_trip_after_the_records() {
    let p = Payload {
        records: vec![gait()],
        face_images: vec![
            image(MIN_FACE_IMAGE_BYTES, 1),
            image(MAX_FACE_IMAGE_BYTES, 2),
        ],
    };
    let bytes = p.encode().unwrap();
    assert_eq!(bytes.len(), p.encoded_len());
    assert_eq!(Payload::decode(&bytes).unwrap(), p);
    // Images alone make a payload too.
    let only = Payload {
        records: vec![],
        face_images: vec![image(500, 3)],
    };
    assert_eq!(Payload::decode(&only.encode().unwrap()).unwrap(), only);
}

#[test]
fn the_image_tag_is_no_factor_so_older_decoders_refuse_it() {
    // A backend that predates face images reads the tag as an unknown factor, which the
    // gateway answers as `invalid_payload`.
    assert_eq!(FactorKind::from_tag(FACE_IMAGE_TAG), None);
}

#[test]
fn bounds_are_enforced_when_encoding_and_decoding() {
    let too_many = Payload {
        records: vec![],
        face_images: vec![image(200, 1); MAX_FACE_IMAGES + 1],
    };
    assert_eq!(
        too_many.encode(),
        Err(PayloadError::FaceImageCount(MAX_FACE_IMAGES + 1))
    );
    for len in [MIN_FACE_IMAGE_BYTES - 1, MAX_FACE_IMAGE_BYTES + 1] {
        let p = Payload {
            records: vec![],
            face_images: vec![image(len, 1)],
        };
        assert!(
            matches!(p.encode(), Err(PayloadError::FaceImage { index: 0, .. })),
            "{len}"
        );
    }

    // Hand-built wire bytes: the decoder checks what an encoder never writes.
    let wire = |count: u16, images: &[(u16, u32, usize)]| {
        let mut out = vec![1u8];
        out.extend_from_slice(&count.to_be_bytes());
        for &(format, declared, actual) in images {
            out.push(FACE_IMAGE_TAG);
            out.extend_from_slice(&format.to_be_bytes());
            out.extend_from_slice(&1_700_000_000_000u64.to_be_bytes());
            out.extend_from_slice(&declared.to_be_bytes());
            out.extend(std::iter::repeat_n(7u8, actual));
        }
        out
    };
    assert!(Payload::decode(&wire(1, &[(1, 300, 300)])).is_ok());
    assert!(matches!(
        Payload::decode(&wire(1, &[(2, 300, 300)])),
        Err(PayloadError::FaceImage { index: 0, .. })
    ));
    // A declared length past the end, or past the bound, is refused before any copy.
    assert_eq!(
        Payload::decode(&wire(1, &[(1, 300, 299)])),
        Err(PayloadError::Truncated)
    );
    assert!(matches!(
        Payload::decode(&wire(1, &[(1, u32::MAX, 300)])),
        Err(PayloadError::FaceImage { index: 0, .. })
    ));
    let five = vec![(1, 200, 200); MAX_FACE_IMAGES + 1];
    assert_eq!(
        Payload::decode(&wire(5, &five)),
        Err(PayloadError::FaceImageCount(MAX_FACE_IMAGES + 1))
    );
    // One encoding: a feature record after an image is refused (the encoder writes
    // images last, so a decoded payload re-encodes to the same bytes).
    let record = Payload {
        records: vec![gait()],
        face_images: vec![],
    }
    .encode()
    .unwrap();
    let mut image_first = wire(2, &[(1, 300, 300)]);
    image_first.extend_from_slice(&record[3..]);
    assert!(matches!(
        Payload::decode(&image_first),
        Err(PayloadError::FaceImage { index: 1, .. })
    ));
    let mut record_first = wire(2, &[]);
    record_first.extend_from_slice(&record[3..]);
    record_first.extend_from_slice(&wire(1, &[(1, 300, 300)])[3..]);
    let p = Payload::decode(&record_first).unwrap();
    assert_eq!(p.encode().unwrap(), record_first);
    let mut trailing = wire(1, &[(1, 300, 300)]);
    trailing.push(0);
    assert_eq!(
        Payload::decode(&trailing),
        Err(PayloadError::TrailingBytes(1))
    );
}

#[test]
fn image_bytes_never_reach_a_debug_print() {
    let p = Payload {
        records: vec![],
        face_images: vec![image(300, 0xAB)],
    };
    let printed = format!("{p:?}");
    assert!(printed.contains("<300 bytes>"), "{printed}");
    assert!(!printed.contains("171"), "{printed}");
}

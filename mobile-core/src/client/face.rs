//! Camera frames for the face factor: normalised on the phone without any model
//! (orientation applied, downscaled, re-encoded as a baseline JPEG without metadata), so
//! what is sealed is small, upright and carries nothing but pixels (no EXIF: no
//! location, no camera serial).

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};
use tacit_shared::payload::{
    FaceImage, ImageFormat, MAX_FACE_IMAGE_BYTES, MAX_FACE_IMAGE_SIDE, MIN_FACE_IMAGE_BYTES,
};

/// Largest JPEG frame accepted from the app (bytes).
pub const MAX_FRAME_BYTES: usize = 16 << 20;
/// Largest side of a frame accepted from the app (pixels).
pub const MAX_FRAME_SIDE: u32 = 8192;
/// Smallest side a frame needs: the face factor's detector finds faces of about 80
/// pixels.
pub const MIN_FRAME_SIDE: u32 = 64;
/// JPEG qualities tried in turn until the image fits [`MAX_FACE_IMAGE_BYTES`].
const QUALITIES: [u8; 4] = [85, 75, 60, 45];

/// The pixels of a camera frame.
#[derive(Clone, PartialEq, Eq)]
pub enum FramePixels {
    /// An encoded JPEG (its EXIF orientation is applied).
    Jpeg(Vec<u8>),
    /// 8-bit RGB, row-major, `width * height * 3` bytes.
    Rgb8 {
        /// Pixels per row.
        width: u32,
        /// Rows.
        height: u32,
        /// The pixels.
        data: Vec<u8>,
    },
    /// 8-bit RGBA, row-major, `width * height * 4` bytes (alpha ignored).
    Rgba8 {
        /// Pixels per row.
        width: u32,
        /// Rows.
        height: u32,
        /// The pixels.
        data: Vec<u8>,
    },
    /// 8-bit grey, row-major, `width * height` bytes.
    Grey8 {
        /// Pixels per row.
        width: u32,
        /// Rows.
        height: u32,
        /// The pixels.
        data: Vec<u8>,
    },
}

impl std::fmt::Debug for FramePixels {
    /// Pixels are biometric data: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FramePixels::Jpeg(b) => write!(f, "Jpeg(<{} bytes>)", b.len()),
            FramePixels::Rgb8 { width, height, .. } => write!(f, "Rgb8({width}x{height})"),
            FramePixels::Rgba8 { width, height, .. } => write!(f, "Rgba8({width}x{height})"),
            FramePixels::Grey8 { width, height, .. } => write!(f, "Grey8({width}x{height})"),
        }
    }
}

/// A camera frame as the app has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraFrame {
    /// The pixels.
    pub pixels: FramePixels,
    /// Clockwise rotation (0, 90, 180 or 270 degrees) that makes the frame upright,
    /// after any EXIF orientation of a JPEG (Android CameraX `rotationDegrees`).
    pub rotation_degrees: u16,
    /// Whether the frame is mirrored (a front camera preview), undone after rotating.
    pub mirrored: bool,
}

/// Why a frame cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame breaks a documented bound, or its pixels do not match its size.
    #[error("{0}")]
    Invalid(String),
    /// The JPEG does not decode.
    #[error("the JPEG does not decode: {0}")]
    Undecodable(String),
}

fn invalid(m: impl Into<String>) -> FrameError {
    FrameError::Invalid(m.into())
}

fn check_side(width: u32, height: u32) -> Result<(), FrameError> {
    let ok = |s: u32| (MIN_FRAME_SIDE..=MAX_FRAME_SIDE).contains(&s);
    if ok(width) && ok(height) {
        Ok(())
    } else {
        Err(invalid(format!(
            "frame of {width}x{height} pixels: each side must be {MIN_FRAME_SIDE}..={MAX_FRAME_SIDE}"
        )))
    }
}

fn raw(
    width: u32,
    height: u32,
    data: &[u8],
    channels: usize,
) -> Result<(u32, u32, Vec<u8>), FrameError> {
    check_side(width, height)?;
    let want = width as usize * height as usize * channels;
    if data.len() != want {
        return Err(invalid(format!(
            "{width}x{height} pixels of {channels} bytes need {want} bytes, got {}",
            data.len()
        )));
    }
    Ok((width, height, data.to_vec()))
}

fn decode(pixels: &FramePixels) -> Result<DynamicImage, FrameError> {
    let mismatch = || invalid("the pixels do not match the frame's size");
    Ok(match pixels {
        FramePixels::Jpeg(bytes) => {
            if bytes.len() > MAX_FRAME_BYTES {
                return Err(invalid(format!(
                    "a JPEG of {} bytes; at most {MAX_FRAME_BYTES}",
                    bytes.len()
                )));
            }
            let mut reader = ImageReader::with_format(Cursor::new(bytes), image::ImageFormat::Jpeg);
            let mut limits = Limits::default();
            limits.max_image_width = Some(MAX_FRAME_SIDE);
            limits.max_image_height = Some(MAX_FRAME_SIDE);
            limits.max_alloc = Some(256 << 20);
            reader.limits(limits);
            let mut decoder = reader
                .into_decoder()
                .map_err(|e| FrameError::Undecodable(e.to_string()))?;
            let orientation = decoder
                .orientation()
                .unwrap_or(image::metadata::Orientation::NoTransforms);
            let (w, h) = decoder.dimensions();
            check_side(w, h)?;
            let mut im = DynamicImage::from_decoder(decoder)
                .map_err(|e| FrameError::Undecodable(e.to_string()))?;
            im.apply_orientation(orientation);
            im
        }
        FramePixels::Rgb8 {
            width,
            height,
            data,
        } => {
            let (w, h, d) = raw(*width, *height, data, 3)?;
            DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, d).ok_or_else(mismatch)?)
        }
        FramePixels::Rgba8 {
            width,
            height,
            data,
        } => {
            let (w, h, d) = raw(*width, *height, data, 4)?;
            DynamicImage::ImageRgb8(
                DynamicImage::ImageRgba8(image::RgbaImage::from_raw(w, h, d).ok_or_else(mismatch)?)
                    .to_rgb8(),
            )
        }
        FramePixels::Grey8 {
            width,
            height,
            data,
        } => {
            let (w, h, d) = raw(*width, *height, data, 1)?;
            DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, d).ok_or_else(mismatch)?)
        }
    })
}

/// Normalises a frame into the face image record that is sealed: upright, unmirrored,
/// longest side at most [`MAX_FACE_IMAGE_SIDE`] (never enlarged), 8-bit RGB,
/// re-encoded as a baseline JPEG of at most [`MAX_FACE_IMAGE_BYTES`] (the quality is
/// lowered until it fits). Nothing of the input besides its pixels survives.
pub fn normalise(frame: &CameraFrame, captured_at_ms: u64) -> Result<FaceImage, FrameError> {
    let mut im = decode(&frame.pixels)?;
    im = match frame.rotation_degrees {
        0 => im,
        90 => im.rotate90(),
        180 => im.rotate180(),
        270 => im.rotate270(),
        other => {
            return Err(invalid(format!(
                "rotation of {other} degrees; 0, 90, 180 or 270"
            )));
        }
    };
    if frame.mirrored {
        im = im.fliph();
    }
    if im.width().max(im.height()) > MAX_FACE_IMAGE_SIDE {
        // Lanczos keeps the detail the embedding needs; the frame is small by now.
        im = im.resize(
            MAX_FACE_IMAGE_SIDE,
            MAX_FACE_IMAGE_SIDE,
            FilterType::Lanczos3,
        );
    }
    let im = DynamicImage::ImageRgb8(im.to_rgb8());
    for quality in QUALITIES {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
            .encode_image(&im)
            .map_err(|e| invalid(format!("the frame does not encode: {e}")))?;
        if out.len() <= MAX_FACE_IMAGE_BYTES {
            if out.len() < MIN_FACE_IMAGE_BYTES {
                return Err(invalid("the frame encodes to almost nothing"));
            }
            return Ok(FaceImage {
                format: ImageFormat::Jpeg,
                captured_at_ms,
                bytes: out,
            });
        }
    }
    Err(invalid(format!(
        "the frame does not fit {MAX_FACE_IMAGE_BYTES} bytes even at quality {}",
        QUALITIES[QUALITIES.len() - 1]
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> Vec<u8> {
        let mut d = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                d.extend_from_slice(&[(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8]);
            }
        }
        d
    }

    fn decoded(im: &FaceImage) -> DynamicImage {
        image::load_from_memory_with_format(&im.bytes, image::ImageFormat::Jpeg).unwrap()
    }

    #[test]
    fn frames_are_downscaled_rotated_and_reencoded() {
        let frame = CameraFrame {
            pixels: FramePixels::Rgb8 {
                width: 1920,
                height: 1080,
                data: gradient(1920, 1080),
            },
            rotation_degrees: 90,
            mirrored: true,
        };
        let out = normalise(&frame, 7).unwrap();
        assert_eq!(out.captured_at_ms, 7);
        assert!(out.bytes.len() <= MAX_FACE_IMAGE_BYTES);
        let im = decoded(&out);
        // Upright: the long side is now the height.
        assert_eq!((im.width(), im.height()), (360, 640));
        // A JPEG of the normalised frame normalises to the same size, not larger.
        let again = normalise(
            &CameraFrame {
                pixels: FramePixels::Jpeg(out.bytes.clone()),
                rotation_degrees: 0,
                mirrored: false,
            },
            8,
        )
        .unwrap();
        assert_eq!(decoded(&again).dimensions_tuple(), (360, 640));
    }

    trait Dims {
        fn dimensions_tuple(&self) -> (u32, u32);
    }
    impl Dims for DynamicImage {
        fn dimensions_tuple(&self) -> (u32, u32) {
            (self.width(), self.height())
        }
    }

    #[test]
    fn small_frames_are_never_enlarged() {
        let frame = CameraFrame {
            pixels: FramePixels::Grey8 {
                width: 92,
                height: 112,
                data: (0..92 * 112).map(|i| (i % 251) as u8).collect(),
            },
            rotation_degrees: 0,
            mirrored: false,
        };
        let out = normalise(&frame, 0).unwrap();
        let im = decoded(&out);
        assert_eq!((im.width(), im.height()), (92, 112));
    }

    #[test]
    fn bad_frames_are_refused_with_a_reason() {
        let grey = |w: u32, h: u32, n: usize| CameraFrame {
            pixels: FramePixels::Grey8 {
                width: w,
                height: h,
                data: vec![9; n],
            },
            rotation_degrees: 0,
            mirrored: false,
        };
        for (frame, what) in [
            (grey(100, 100, 9_999), "need 10000 bytes"),
            (grey(10, 100, 1_000), "each side"),
            (grey(9_000, 100, 900_000), "each side"),
            (
                CameraFrame {
                    rotation_degrees: 45,
                    ..grey(100, 100, 10_000)
                },
                "rotation",
            ),
        ] {
            let err = normalise(&frame, 0).unwrap_err();
            assert!(err.to_string().contains(what), "{err}");
        }
        let not_jpeg = CameraFrame {
            pixels: FramePixels::Jpeg(vec![0xFF, 0xD8, 0xFF, 0, 1, 2]),
            rotation_degrees: 0,
            mirrored: false,
        };
        assert!(matches!(
            normalise(&not_jpeg, 0),
            Err(FrameError::Undecodable(_))
        ));
        let huge = CameraFrame {
            pixels: FramePixels::Jpeg(vec![0; MAX_FRAME_BYTES + 1]),
            rotation_degrees: 0,
            mirrored: false,
        };
        assert!(matches!(normalise(&huge, 0), Err(FrameError::Invalid(_))));
        // Pixels never reach a debug print.
        assert_eq!(
            format!("{:?}", grey(100, 100, 10_000).pixels),
            "Grey8(100x100)"
        );
    }
}

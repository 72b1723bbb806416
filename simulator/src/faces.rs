//! Faces for the synthetic people: the images of a real face data set (a folder of
//! `<person>/<images>`, research use only, never shipped), one real person per
//! synthetic one. A person enrols on their first [`ENROL_FACES`] images and is probed
//! with the others, never with an enrolment image; the phone core gets them as camera
//! frames (binary PGM as grey pixels, JPEG as it is) and normalises them like a camera's.

use std::path::{Path, PathBuf};

use tacit_mobile_core::client::face::{CameraFrame, FramePixels};

/// Images a person enrols on; they need at least one more to be probed.
pub const ENROL_FACES: usize = 5;
/// Largest image file read.
const MAX_IMAGE_BYTES: u64 = 8 << 20;

/// One real person's frames, in the folder's order.
#[derive(Debug, Clone)]
pub struct FacePerson {
    /// The folder's name.
    pub name: String,
    /// Their frames: the first [`ENROL_FACES`] enrol, the rest probe.
    pub frames: Vec<CameraFrame>,
}

impl FacePerson {
    /// The enrolment frames.
    pub fn enrolment(&self) -> &[CameraFrame] {
        &self.frames[..ENROL_FACES]
    }

    /// Probe frame `k` (cycling through the probes).
    pub fn probe(&self, k: usize) -> &CameraFrame {
        let probes = &self.frames[ENROL_FACES..];
        &probes[k % probes.len()]
    }
}

/// The people of a face data set with enough readable images.
#[derive(Debug, Clone)]
pub struct FaceSet {
    /// Where it was read from.
    pub dir: PathBuf,
    /// People with more than [`ENROL_FACES`] readable images, in name order.
    pub people: Vec<FacePerson>,
    /// Files that are neither binary PGM nor JPEG (or too large), not used.
    pub skipped_files: usize,
    /// People with too few readable images, not used.
    pub skipped_people: usize,
}

/// Sorts "s2" before "s10" (data sets number their people and images).
fn natural_key(name: &str) -> (String, u64, String) {
    let digits: String = name.chars().filter(char::is_ascii_digit).collect();
    let stem: String = name.chars().filter(|c| !c.is_ascii_digit()).collect();
    (stem, digits.parse().unwrap_or(0), name.to_string())
}

/// A frame from an image file: a binary PGM (8-bit) as grey pixels, a JPEG as it is.
fn frame_of(bytes: Vec<u8>) -> Option<CameraFrame> {
    let pixels = if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        FramePixels::Jpeg(bytes)
    } else if bytes.starts_with(b"P5") {
        let mut fields = Vec::new();
        let mut pos = 2;
        while fields.len() < 3 {
            while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
                pos += 1;
            }
            if bytes.get(pos) == Some(&b'#') {
                while pos < bytes.len() && bytes[pos] != b'\n' {
                    pos += 1;
                }
                continue;
            }
            let start = pos;
            while pos < bytes.len() && bytes[pos].is_ascii_digit() {
                pos += 1;
            }
            fields.push(
                std::str::from_utf8(&bytes[start..pos])
                    .ok()?
                    .parse::<u32>()
                    .ok()?,
            );
        }
        let (width, height, max) = (fields[0], fields[1], fields[2]);
        let n = width as usize * height as usize;
        // One whitespace byte after the header, then exactly the pixels.
        if max != 255 || bytes.len() != pos + 1 + n {
            return None;
        }
        FramePixels::Grey8 {
            width,
            height,
            data: bytes[pos + 1..].to_vec(),
        }
    } else {
        return None;
    };
    Some(CameraFrame {
        pixels,
        rotation_degrees: 0,
        mirrored: false,
    })
}

impl FaceSet {
    /// Reads `dir`: each subfolder is a person, each file in it an image.
    pub fn load(dir: &Path) -> anyhow::Result<FaceSet> {
        let read = |d: &Path| -> anyhow::Result<Vec<PathBuf>> {
            let mut v: Vec<PathBuf> = std::fs::read_dir(d)
                .map_err(|e| anyhow::anyhow!("{}: {e}", d.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            v.sort_by_key(|p| natural_key(&p.file_name().unwrap_or_default().to_string_lossy()));
            Ok(v)
        };
        let mut set = FaceSet {
            dir: dir.to_path_buf(),
            people: Vec::new(),
            skipped_files: 0,
            skipped_people: 0,
        };
        for person in read(dir)?.into_iter().filter(|p| p.is_dir()) {
            let mut frames = Vec::new();
            for f in read(&person)?.into_iter().filter(|p| p.is_file()) {
                let ok = std::fs::metadata(&f).is_ok_and(|m| m.len() <= MAX_IMAGE_BYTES);
                match ok
                    .then(|| std::fs::read(&f).ok())
                    .flatten()
                    .and_then(frame_of)
                {
                    Some(frame) => frames.push(frame),
                    None => set.skipped_files += 1,
                }
            }
            if frames.len() > ENROL_FACES {
                set.people.push(FacePerson {
                    name: person
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into(),
                    frames,
                });
            } else {
                set.skipped_people += 1;
            }
        }
        if set.people.len() < 2 {
            return Err(anyhow::anyhow!(
                "{}: {} people with more than {ENROL_FACES} binary PGM or JPEG images; faces need at least 2",
                dir.display(),
                set.people.len()
            ));
        }
        Ok(set)
    }

    /// The face of synthetic person `i`: real person `i`, while there are enough.
    pub fn of(&self, i: usize) -> Option<&FacePerson> {
        self.people.get(i)
    }

    /// A face for someone holding person `owner`'s phone who is person `other`: their
    /// own when they have one, else another real person's (never the owner's).
    pub fn other_than(&self, owner: usize, other: usize) -> &FacePerson {
        match self.people.get(other) {
            Some(p) if other != owner => p,
            _ => &self.people[(owner + 1 + other % (self.people.len() - 1)) % self.people.len()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgm_and_jpeg_become_frames_and_other_files_are_skipped() {
        let mut pgm = b"P5\n# a comment\n4 2\n255\n".to_vec();
        pgm.extend([1, 2, 3, 4, 5, 6, 7, 8]);
        match frame_of(pgm.clone()).map(|f| f.pixels) {
            Some(FramePixels::Grey8 {
                width: 4,
                height: 2,
                data,
            }) => assert_eq!(data, [1, 2, 3, 4, 5, 6, 7, 8]),
            other => panic!("{other:?}"),
        }
        pgm.push(9);
        assert!(frame_of(pgm).is_none(), "a pixel too many");
        assert!(matches!(
            frame_of(vec![0xFF, 0xD8, 0xFF, 0xE0]).map(|f| f.pixels),
            Some(FramePixels::Jpeg(_))
        ));
        assert!(frame_of(b"GIF89a".to_vec()).is_none());
        assert!(frame_of(b"P5\n4 2\n65535\n".to_vec()).is_none());
        let mut names = vec!["s10", "s2", "s1"];
        names.sort_by_key(|n| natural_key(n));
        assert_eq!(names, ["s1", "s2", "s10"]);
    }
}

"""Reading and normalising face images, bounded: any format Pillow recognises by its
content (PGM, JPEG, PNG, GIF; the file name's extension is not needed), EXIF
orientation applied, the first frame of an animation, converted to 8-bit RGB and
downscaled so that its longer side is at most MAX_SIDE. Images are only ever held in
memory: nothing here writes one anywhere."""

import io

import numpy as np
from PIL import Image, ImageOps

# Longest side kept: the embedding network sees a 150 x 150 aligned crop, and HOG finds
# faces of 80 px and up, so larger frames only cost time.
MAX_SIDE = 640
# Bounds on what is decoded at all: a decompression bomb is refused before it is
# expanded (Pillow checks the header's size against MAX_IMAGE_PIXELS).
MAX_BYTES = 8 << 20
MAX_PIXELS = 40_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class ImageError(ValueError):
    """Bytes that are not an image this factor can read."""


def decode(data):
    """An RGB uint8 array [h, w, 3] of the image in `data` (bytes), normalised."""
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) == 0:
        raise ImageError("empty image")
    if len(data) > MAX_BYTES:
        raise ImageError(f"image of {len(data)} bytes, at most {MAX_BYTES}")
    try:
        with Image.open(io.BytesIO(bytes(data))) as im:
            im.seek(0)
            im = ImageOps.exif_transpose(im)
            im = im.convert("RGB")
            if max(im.size) > MAX_SIDE:
                im.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
            a = np.asarray(im, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"image too large: {e}") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"not an image this factor reads: {e}") from None
    if a.ndim != 3 or a.shape[0] < 16 or a.shape[1] < 16:
        raise ImageError(f"image of {a.shape[:2]} pixels is too small")
    return a


def read_file(path):
    """decode() of a file's bytes."""
    with open(path, "rb") as f:
        return decode(f.read(MAX_BYTES + 1))

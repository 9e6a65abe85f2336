"""Photo sanitising: content-checked JPEG/PNG/WebP, re-encoded without any metadata (EXIF,
GPS, XMP, ICC, text chunks), bounded in size, thumbnails, and staff redaction."""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from agilecity.errors import BadRequestDataError, PayloadTooLargeError

ACCEPTED = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MEDIA_TYPE = "image/jpeg"  # every served variant is a fresh JPEG
THUMBNAIL_SIDE = 320


@dataclass(frozen=True)
class PhotoLimits:
    """How large an upload may be (bytes, decoded pixels) and the longest side kept."""

    max_bytes: int = 5 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_side: int = 2048


@dataclass(frozen=True)
class SanitisedPhoto:
    """A re-encoded photo and its thumbnail (JPEG bytes, no metadata)."""

    image: bytes
    thumbnail: bytes
    width: int
    height: int
    source_format: str


def _encode(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85, optimize=True)  # no exif/icc/xmp given
    return out.getvalue()


def _pixels_only(image: Image.Image) -> Image.Image:
    """A new RGB image holding only the pixels (transparency flattened on white)."""
    if image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        image = flat
    clean = Image.new("RGB", image.size)
    clean.paste(image.convert("RGB"))
    return clean


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says (as it is when the EXIF is broken:
    a broken EXIF is dropped anyway, it is no reason to refuse the photo)."""
    try:
        return ImageOps.exif_transpose(image)
    except (SyntaxError, ValueError, OSError, KeyError, TypeError, struct.error):
        return image


def sanitise(data: bytes, limits: PhotoLimits) -> SanitisedPhoto:
    """Check an upload by its content and re-encode it without metadata (400/413 otherwise).

    The EXIF orientation is applied to the pixels first, so a photo stays upright once its
    EXIF is gone."""
    if len(data) > limits.max_bytes:
        raise PayloadTooLargeError(f"a photo may have at most {limits.max_bytes} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(io.BytesIO(data), formats=list(ACCEPTED))
            source = str(opened.format)
            width, height = opened.size
            if width * height > limits.max_pixels:
                raise PayloadTooLargeError(f"a photo may have at most {limits.max_pixels} pixels")
            opened.load()
            upright = _upright(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PayloadTooLargeError(f"a photo may have at most {limits.max_pixels} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise BadRequestDataError("the photo must be a JPEG, PNG or WebP image") from None
    clean = _pixels_only(upright)
    clean.thumbnail((limits.max_side, limits.max_side))
    thumb = clean.copy()
    thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    return SanitisedPhoto(_encode(clean), _encode(thumb), clean.width, clean.height, source)


def redact(image: bytes, boxes: list[tuple[float, float, float, float]]) -> tuple[bytes, bytes]:
    """The image with black rectangles over ``boxes`` (x, y, width, height as fractions of
    the image, 0..1), and its thumbnail; both freshly encoded."""
    with Image.open(io.BytesIO(image), formats=["JPEG"]) as opened:
        picture = _pixels_only(opened)
    draw = ImageDraw.Draw(picture)
    for x, y, w, h in boxes:
        if not all(0 <= v <= 1 for v in (x, y, w, h)) or w <= 0 or h <= 0:
            raise BadRequestDataError("a redaction box is [x, y, width, height] within 0..1")
        left, top = x * picture.width, y * picture.height
        right = min(picture.width, (x + w) * picture.width)
        bottom = min(picture.height, (y + h) * picture.height)
        draw.rectangle((left, top, right, bottom), fill=(0, 0, 0))
    thumb = picture.copy()
    thumb.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    return _encode(picture), _encode(thumb)

"""Making uploaded photos and documents safe to keep and to serve.

Files are recognised by their bytes, never by their name or declared type. Images are decoded
and re-encoded with Pillow, which drops EXIF (GPS position, camera serial number) and anything
hidden after the image data; they are turned upright and scaled down. PDFs are kept as sent.
"""

from __future__ import annotations

import io
import re
from typing import Final

from townhall.errors import TownhallError

IMAGE_MAX_SIDE: Final = 2560
IMAGE_MAX_PIXELS: Final = 50_000_000  # a decompression bomb is refused, not decoded


def sniff(data: bytes) -> str | None:
    """The media type the bytes really are, among those accepted; None otherwise."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def safe_filename(filename: str) -> str:
    """The name without folders or odd characters, without its extension, at most 80
    characters ("attachment" when nothing is left)."""
    base = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", base).rsplit(".", 1)[0].strip("._")
    return (stem or "attachment")[:80]


def prepare_upload(filename: str, data: bytes, *, max_bytes: int) -> tuple[str, str, bytes]:
    """(filename, media type, bytes) ready to store. Raises 413 over `max_bytes`, 415 for a
    type that is not a photo or a PDF, 422 for an image that cannot be decoded."""
    if len(data) > max_bytes:
        raise TownhallError(413, "body_too_large", f"Attachments may be at most {max_bytes} bytes.")
    kind = sniff(data)
    if kind is None:
        raise TownhallError(
            415,
            "unsupported_media_type",
            "Attach a photo (JPEG, PNG, WebP, GIF) or a PDF document.",
        )
    stem = safe_filename(filename)
    if kind == "application/pdf":
        return f"{stem}.pdf", kind, data
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = IMAGE_MAX_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened) or opened
            image.thumbnail((IMAGE_MAX_SIDE, IMAGE_MAX_SIDE))
            transparent = image.mode in ("RGBA", "LA", "P") and kind in ("image/png", "image/gif")
            out = io.BytesIO()
            if transparent:
                image.convert("RGBA").save(out, format="PNG", optimize=True)
                return f"{stem}.png", "image/png", out.getvalue()
            image.convert("RGB").save(out, format="JPEG", quality=85, optimize=True)
            return f"{stem}.jpg", "image/jpeg", out.getvalue()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError):
        raise TownhallError(
            422,
            "invalid_request",
            "attachment: the image could not be read",
            errors=[{"loc": ["attachment"], "message": "could not be read", "type": "value_error"}],
        ) from None

"""One bounded decode for every image file the package reads: the loader's folders, `ram predict` and the page's
uploads.

Pillow checks an image's declared size (Image.MAX_IMAGE_PIXELS, at 89 million pixels a warning), and nothing else. What
a file can cost beyond it, each bounded here before or while it is decoded:
  - pixels as decoded: a TIFF's tiles or strips are decoded whole, and a 2 MB TIFF declaring 2000x2000 held one
    32000x32000 16-bit tile (2.25 GB per decode). Tiles and strips are checked against `max_pixels` from the tags
    Pillow has parsed, before any pixel is decoded.
  - time: a progressive JPEG may repeat a scan as often as it likes, and libjpeg decodes each one over the whole image
    (a 50 KB grey 2000x2000 file of 950 scans took 1.3 s, a 2 MB one minutes). The scans are counted as the decoder
    reads them (MAX_SCANS), and every read checks a deadline (`max_seconds`): Pillow feeds its decoders in blocks of
    `_BLOCK` bytes, so no decoder runs long between two checks.
  - any exception of a damaged file: Pillow's plug-ins raise SyntaxError, struct.error, IndexError, EOFError and more
    on files they cannot parse (an 85-byte PNG whose second chunk type is \\0\\0\\0I raised SyntaxError); each becomes
    one `UnreadableImage` naming what went wrong.
Only FORMATS are decoded, whatever a file's extension says.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = ["FORMATS", "FORMAT_NAMES", "MAX_PIXELS", "MAX_SCANS", "NotAnImage", "Stopped", "UnreadableImage",
           "converted", "decode"]

# The image formats read (Pillow's names). Pillow knows dozens more, some decoded by outside programs: EPS goes to
# Ghostscript, which runs the PostScript it is given, whatever the file's extension.
FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF")
FORMAT_NAMES = "PNG, JPEG, GIF, BMP, WebP or TIFF"  # FORMATS, for messages
MAX_PIXELS = 50_000_000  # a 48-megapixel phone photo decodes; RGBA at 4 bytes a pixel stays under 200 MB
MAX_SCANS = 100  # libjpeg's progressive script writes 6 scans for grey, 10 for colour; encoders that tune more stay far
# below 100
MAX_SECONDS = 30.0  # a 50-megapixel JPEG decodes in about a second on one core
_BLOCK = 4096  # bytes Pillow hands a decoder at a time (its default, 64 KB, held 1,900 bombed scans)
_SOS = b"\xff\xda"  # a JPEG's start-of-scan marker; inside a scan's data every 0xFF byte is followed by 0x00


class UnreadableImage(ValueError):
    """A file that is no image in FORMATS, is damaged, or would cost more than the bounds to decode. The message says
    why, without the file's name (which the caller knows and names its own way)."""


class Stopped(UnreadableImage):
    """A decode stopped from outside (`decode(stop=)`) before it ended."""


class NotAnImage(UnreadableImage):
    """A file whose header is not one of an image in FORMATS."""


def decode(fp, *, max_pixels: int = MAX_PIXELS, max_seconds: float = MAX_SECONDS,
           stop: threading.Event | None = None) -> Image.Image:
    """The image in the binary file object fp, decoded (its pixels loaded) within the bounds above.

    Raises UnreadableImage for anything that is not a readable image of at most max_pixels pixels, or that takes
    over max_seconds to decode; `Stopped` as soon as `stop` is set (the page sets it when its client leaves).
    """
    try:
        image = Image.open(fp, formats=FORMATS)
    except UnidentifiedImageError:
        raise NotAnImage(f"not a readable image (only {FORMAT_NAMES} are read)") from None
    except Image.DecompressionBombError as e:
        raise UnreadableImage(f"the image is too large ({e})") from None
    except Exception as e:  # noqa: BLE001 - a damaged header breaks Pillow's parsers in many ways, none a bug here
        raise NotAnImage(f"not a readable image ({type(e).__name__}: {e})") from None
    _check_pixels(image, max_pixels)
    image.fp = _Guarded(image.fp, jpeg=image.format == "JPEG", seconds=max_seconds, stop=stop)
    image.decodermaxblock = _BLOCK
    try:
        image.load()
    except UnreadableImage:
        raise
    except Exception as e:  # noqa: BLE001 - as above, for the pixels (a truncated file raises OSError)
        raise UnreadableImage(f"cannot decode the image ({type(e).__name__}: {e})") from None
    return image


def _check_pixels(image: Image.Image, max_pixels: int) -> None:
    """UnreadableImage if the image, or a piece of it that is decoded whole (a TIFF's tile or strip), has more than
    max_pixels pixels."""
    width, height = image.size
    if width < 1 or height < 1:
        raise UnreadableImage(f"the image is {width}x{height} pixels: it has none")
    if width * height > max_pixels:
        raise UnreadableImage(f"the image is {width}x{height} pixels; at most {max_pixels:,} pixels are decoded")
    if image.format == "TIFF":
        tags = image.tag_v2
        tile = (tags.get(322), tags.get(323))  # TileWidth, TileLength
        if any(tile):
            piece, kind = (_int(tile[0], width), _int(tile[1], height)), "tile"
        else:
            piece, kind = (width, min(_int(tags.get(278), height), height)), "strip"  # RowsPerStrip
        if piece[0] * piece[1] > max_pixels:
            raise UnreadableImage(f"the TIFF is {width}x{height} pixels but is stored in {piece[0]}x{piece[1]} "
                                  f"{kind}s, each decoded whole; at most {max_pixels:,} pixels are decoded")


def _int(value, default: int) -> int:
    """A TIFF tag's number (Pillow gives a tuple for a tag stored as several), or default when absent or not one."""
    if isinstance(value, tuple):
        value = max(value, default=None)
    return int(value) if isinstance(value, int | float) and value > 0 else default


class _Guarded:
    """The file object a decoder reads from, with a deadline checked at every read and, for a JPEG, its scans
    counted. Everything else (seek, tell, close, fileno) is the file's own."""

    def __init__(self, fp, *, jpeg: bool, seconds: float, stop: threading.Event | None = None):
        self._fp, self._jpeg, self._seconds, self._stop = fp, jpeg, seconds, stop
        self._deadline = time.monotonic() + seconds
        self._scans, self._tail = 0, b""

    def read(self, *args) -> bytes:
        if self._stop is not None and self._stop.is_set():
            raise Stopped("the decode was stopped")
        if time.monotonic() > self._deadline:
            raise UnreadableImage(f"decoding took over {self._seconds:g} s; the file is not decoded further")
        data = self._fp.read(*args)
        if self._jpeg and data:
            self._scans += (self._tail + data).count(_SOS)  # one straddling two reads is counted once
            self._tail = data[-1:]
            if self._scans > MAX_SCANS:
                raise UnreadableImage(f"the JPEG has over {MAX_SCANS} scans (a normal one has at most a few dozen), "
                                      "each decoded over the whole image; it is not decoded further")
        return data

    def __getattr__(self, name):
        return getattr(self._fp, name)


def converted(image: Image.Image, mode: str) -> Image.Image:
    """A decoded image in mode "L" or "RGB". A 16-bit grey image is scaled to 0..255 (Pillow's convert clips every
    value above 255 to 255, which turns a 16-bit photo white), a 32-bit integer one likewise from 0..65535."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        wide = np.asarray(image).astype(np.float64)  # uint16 (either byte order) or int32
        image = Image.fromarray(np.rint(np.clip(wide, 0, 65535) / 257).astype(np.uint8), "L")
    return image.convert(mode)

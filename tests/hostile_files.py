"""Hostile image files of issue 61, made in a few milliseconds: a progressive-JPEG scan bomb, a TIFF tile bomb, a PNG
that breaks Pillow's parser, and a valid small file of every format the loader reads (for the fuzz test)."""

import io
import struct
import zlib

import numpy as np
from PIL import Image


def chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: length, type, data and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def broken_png() -> bytes:
    """An 8x8 grey PNG whose pixels continue in a chunk of type \\0\\0\\0I: Pillow opens it, and raises SyntaxError
    when it loads the pixels."""
    raw = zlib.compress(b"".join(b"\0" + bytes(8) for _ in range(8)))
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0))
    return (b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", raw[:5]) + chunk(b"\0\0\0I", raw[5:])
            + chunk(b"IEND", b""))


def scan_bomb(*, side: int = 2000, size: int = 50_000) -> bytes:
    """A grey side x side progressive JPEG whose last scan (its Huffman table and the scan) is repeated until the file
    is about `size` bytes: libjpeg decodes every repeat over the whole image (50 KB: about 950 scans)."""
    buffer = io.BytesIO()
    Image.new("L", (side, side), 128).save(buffer, "JPEG", progressive=True, quality=50)
    data = buffer.getvalue()
    last = data.rfind(b"\xff\xda")
    scan = data[max(data.rfind(b"\xff\xc4", 0, last), 0) or last : -2]  # DHT + SOS + its data, without EOI
    return data[:-2] + scan * max(1, (size - len(data)) // len(scan)) + b"\xff\xd9"


def tile_bomb(*, declared: int = 2000, tile: int = 32000) -> bytes:
    """A 16-bit grey TIFF declaring declared x declared pixels, stored as one tile x tile deflate tile (of zeros,
    2 MB compressed): libtiff decodes a tile whole, 2 GB for the default."""
    pixels = zlib.compress(bytes(tile * tile * 2), 9)
    tags = [(256, 4, declared), (257, 4, declared), (258, 3, 16), (259, 3, 8), (262, 3, 1), (277, 3, 1),
            (322, 4, tile), (323, 4, tile), (324, 4, None), (325, 4, len(pixels))]
    start = 8 + 2 + 12 * len(tags) + 4  # the pixels follow the one IFD
    ifd = struct.pack("<H", len(tags))
    for tag, kind, value in tags:
        value = start if value is None else value
        ifd += struct.pack("<HHIHH" if kind == 3 else "<HHII", tag, kind, 1, value, *((0,) if kind == 3 else ()))
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + pixels


def sample(form: str, *, mode: str = "L", side: int = 24) -> bytes:
    """A small valid image file in Pillow's format `form`, with some structure for a mutation to break."""
    rng = np.random.default_rng(0)
    shape = (side, side) if mode == "L" else (side, side, 3)
    pixels = (rng.random(shape) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    options = {"JPEG": {"progressive": True}, "TIFF": {"compression": "tiff_deflate"}}.get(form, {})
    Image.fromarray(pixels, mode).save(buffer, form, **options)
    return buffer.getvalue()

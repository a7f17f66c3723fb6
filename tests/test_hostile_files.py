"""Image files that cost too much or break Pillow (issue 61, findings 1, 2, 8 and 13): every decode, in the loader,
`ram predict` and the page, is bounded in pixels as decoded, in scans and in time, and fails with one error naming the
file. Each test failed before its fix; the fuzz test feeds mutated files of every format to the loader for a few
seconds."""

import io
import random
import time

import numpy as np
import pytest
from PIL import Image

from hostile_files import broken_png, sample, scan_bomb, tile_bomb
from ram.data import DataError
from ram.data import decoding
from ram.data import images as user
from ram.serve.images import BadImage, decode


def test_a_progressive_jpeg_of_a_thousand_scans_is_refused_by_its_scan_count(tmp_path):
    path = tmp_path / "bomb.jpg"
    path.write_bytes(scan_bomb(size=50_000))  # about 950 scans: 1.3 s of CPU decoded whole, minutes at 2 MB
    with pytest.raises(DataError, match=rf"bomb.jpg: the JPEG has over {decoding.MAX_SCANS} scans"):
        user.read_image(path, size=28, channels=1)
    with pytest.raises(BadImage, match="scans"):
        decode(path.read_bytes())


def test_a_normal_progressive_jpeg_is_read(tmp_path):
    path = tmp_path / "fine.jpg"
    path.write_bytes(sample("JPEG", mode="RGB", side=300))
    pixels, size = user.read_image(path, size=28, channels=3)
    assert pixels.shape == (3, 28, 28) and size == (300, 300)


def test_a_decode_past_its_deadline_stops(monkeypatch):
    """The deadline is checked at every block the decoder reads: with the scan count out of the way, a bomb is stopped
    by time (here a deadline of 0 s: the first read after the header is past it)."""
    monkeypatch.setattr(decoding, "MAX_SCANS", 10**9)
    with pytest.raises(decoding.UnreadableImage, match="decoding took over 0 s"):
        decoding.decode(io.BytesIO(scan_bomb(size=20_000)), max_seconds=0)


def test_a_tiff_tile_larger_than_its_image_is_refused_before_decoding(tmp_path):
    """A 2 MB TIFF declaring 2000x2000 that holds one 32000x32000 16-bit tile took 2.25 GB per decode."""
    path = tmp_path / "tile.tif"
    path.write_bytes(tile_bomb())
    with pytest.raises(DataError, match=r"tile.tif: the TIFF is 2000x2000 pixels but is stored in 32000x32000 tiles"):
        user.read_image(path, size=28, channels=1)
    with pytest.raises(BadImage, match="32000x32000 tiles"):
        decode(path.read_bytes())


def test_a_tiff_in_strips_is_read(tmp_path):
    path = tmp_path / "strips.tif"
    Image.new("L", (100, 60), 77).save(path, compression="tiff_deflate")
    pixels, _ = user.read_image(path, size=100, channels=1)
    assert pixels[0, 20:80].min() == 77


def test_a_png_that_makes_pillow_raise_syntax_error_is_named(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(broken_png())
    with pytest.raises(DataError, match=r"broken.png: cannot decode the image \(SyntaxError: broken PNG file"):
        user.read_image(path, size=8, channels=1)
    with pytest.raises(BadImage, match="SyntaxError"):
        decode(path.read_bytes())


def test_a_16_bit_image_is_scaled_to_8_bits_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    for form in ("PNG", "TIFF"):
        path = tmp_path / f"ramp.{form.lower()}"
        Image.fromarray(ramp).save(path, form)
        pixels, _ = user.read_image(path, size=64, channels=1)
        expected = np.rint(ramp / 257).astype(np.uint8)
        np.testing.assert_array_equal(pixels[0], expected, err_msg=form)  # clipped, 255 from value 255 up


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns of the damage it reads past (corrupt EXIF, ...)
@pytest.mark.parametrize("form", decoding.FORMATS)
def test_fuzz_mutated_files_only_ever_give_an_image_or_a_data_error(form, tmp_path):
    """Flipped, overwritten, cut and repeated bytes of a valid file of each format, about half a second a format:
    read_image returns pixels of the asked shape or raises DataError naming the file, never anything else."""
    rng = random.Random(form)
    originals = [sample(form, mode="L"), sample(form, mode="RGB")]
    path = tmp_path / f"fuzzed.{form.lower()}"
    tried, stop = 0, time.monotonic() + 0.5
    while time.monotonic() < stop or tried < 20:
        data = bytearray(rng.choice(originals))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            kind = rng.randrange(4)
            if kind == 0:
                data[at] ^= 1 << rng.randrange(8)
            elif kind == 1:
                data[at : at + 4] = rng.randbytes(4)
            elif kind == 2:
                del data[at:]
                data += b"\0" if not data else b""
            else:
                data[at:at] = data[at : at + rng.randint(1, 64)] * rng.randint(1, 50)
        path.write_bytes(bytes(data))
        try:
            pixels, _ = user.read_image(path, size=16, channels=3)
            assert pixels.shape == (3, 16, 16) and pixels.dtype == np.uint8
        except DataError as e:
            assert str(e).startswith(f"{path}: ")
        tried += 1
    assert tried >= 20


def test_an_image_in_a_mode_pillow_cannot_convert_is_named(tmp_path):
    """A LAB TIFF: Pillow decodes it and cannot make it grey; the ValueError escaped read_image."""
    path = tmp_path / "lab.tif"
    Image.new("LAB", (8, 8)).save(path)
    with pytest.raises(DataError, match=r"lab.tif: the image is in mode LAB, which is not read here"):
        user.read_image(path, size=8, channels=1)

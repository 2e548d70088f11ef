"""Read an encoded image's format and size from its header, without decoding it.

The pixel cap is enforced here, before OpenCV allocates anything, so a
decompression bomb (a few KB of PNG that inflates to gigabytes) costs a
header parse, not memory.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from edgetl.errors import InvalidInput

SUPPORTED = "JPEG, PNG or BMP"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the size: C0-C3, C5-C7, C9-CB, CD-CF (not C4 DHT, C8, CC DAC).
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Markers that stand alone, without a length field.
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD9)}


class ImageHeader(NamedTuple):
    format: str  # "png", "jpeg" or "bmp"
    width: int
    height: int


def read_header(data: bytes) -> ImageHeader:
    """Format and size of an encoded image.

    Raises:
        InvalidInput: empty, an unsupported format, or a header that is cut
            short or makes no sense.
    """
    if not data:
        raise InvalidInput(f"the image is empty (0 bytes); send the bytes of a {SUPPORTED} file")
    if data.startswith(_PNG_SIGNATURE):
        header = _png(data)
    elif data.startswith(b"\xff\xd8"):
        header = _jpeg(data)
    elif data.startswith(b"BM"):
        header = _bmp(data)
    else:
        raise InvalidInput(f"unsupported image format (starts with {data[:8].hex(' ')}); send {SUPPORTED}")
    if header.width <= 0 or header.height <= 0:
        raise InvalidInput(f"corrupt {header.format.upper()} header: size {header.width}x{header.height}")
    return header


def _png(data: bytes) -> ImageHeader:
    # Signature, then the IHDR chunk: length, b"IHDR", width, height (big-endian).
    if len(data) < 24 or data[12:16] != b"IHDR":
        raise InvalidInput("corrupt PNG: missing IHDR header")
    width, height = struct.unpack(">II", data[16:24])
    return ImageHeader("png", width, height)


def _bmp(data: bytes) -> ImageHeader:
    if len(data) < 26:
        raise InvalidInput("corrupt BMP: header cut short")
    (dib_size,) = struct.unpack("<I", data[14:18])
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return ImageHeader("bmp", width, abs(height))  # negative height: top-down rows


def _jpeg(data: bytes) -> ImageHeader:
    pos = 2
    end = len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            raise InvalidInput(f"corrupt JPEG: expected a marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            raise InvalidInput(f"corrupt JPEG: segment length {length} at byte {pos}")
        if marker in _JPEG_SOF:
            if pos + 9 > end:
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return ImageHeader("jpeg", width, height)
        if marker == 0xDA:  # start of scan before any frame header
            raise InvalidInput("corrupt JPEG: image data before the frame header")
        pos += 2 + length
    raise InvalidInput("corrupt JPEG: no frame header (file cut short?)")

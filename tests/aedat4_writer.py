"""A minimal AEDAT 4.0 writer for tests: polarity events in one ``EVTS`` stream, uncompressed and without DV's file
data table (both optional in the format; DV itself usually compresses with LZ4 and appends the table).

File layout (iniVation's AEDAT 4.0 specification, read by the ``aedat`` package that tonic's ``read_aedat4`` uses):

- the magic line ``#!AER-DAT4.0\\r\\n``;
- ``uint32`` size, then an ``IOHeader`` flatbuffer (identifier ``IOHE``) of that size. Its table
  ``{compression: int32 = NONE (0); file_data_position: int64 = -1; description: string}`` stores only the
  description, an XML tree ``<dv><node name="outInfo"><node name="<stream id>">`` with the stream's
  ``typeIdentifier`` (``EVTS``) and ``info/sizeX``, ``info/sizeY``; the defaults say "no compression" and "no file
  data table" (``-1``: the reader reads packets up to the end of the file, so no file tail is written);
- packets, each ``int32`` stream id, ``int32`` size, then a size-prefixed ``EventPacket`` flatbuffer (identifier
  ``EVTS``): table ``{elements: [Event]}``, a vector of 16-byte structs
  ``Event {t: int64 (microseconds); x: int16; y: int16; on: bool}`` (``t`` at byte 0, ``x`` at 8, ``y`` at 10,
  ``on`` at 12, 3 padding bytes).

Flatbuffers are written by hand with :mod:`struct` (little-endian; every offset is a ``uint32`` counted from where
it is stored, forward; a table starts with an ``int32`` giving ``table position - vtable position``; a vtable is
``uint16`` vtable size, table size, then one field offset per field, 0 meaning "absent, use the default"). Every
item sits at its natural alignment counted from the start of the buffer the reader parses.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

MAGIC = b"#!AER-DAT4.0\r\n"
EVENT = struct.Struct("<qhh?3x")  # Event {t: int64, x: int16, y: int16, on: bool}, 16 bytes, 8-aligned


def _pad(buffer: bytearray, alignment: int) -> None:
    buffer.extend(b"\0" * (-len(buffer) % alignment))


def _one_field_table(identifier: bytes, n_fields: int, field: int, start: int) -> tuple[bytearray, int]:
    """Buffer (its first byte at ``start`` in the parsed buffer) holding the root offset, ``identifier``, a vtable
    for a table of ``n_fields`` fields of which only ``field`` (a ``uint32`` offset) is present, and the table; the
    offset slot is left 0. Returns (buffer, position of the offset slot within the buffer)."""
    if len(identifier) != 4:
        raise ValueError(f"identifier must be 4 bytes, got {identifier!r}")
    vtable_pos = start + 8
    vtable = [0] * n_fields
    vtable[field] = 4  # the field follows the table's int32 vtable offset
    vtable_bytes = struct.pack(f"<HH{n_fields}H", 4 + 2 * n_fields, 8, *vtable)
    table_pos = vtable_pos + len(vtable_bytes)
    table_pos += -table_pos % 4
    buffer = bytearray(struct.pack("<I", table_pos - start) + identifier + vtable_bytes)
    _pad(buffer, 4)
    buffer += struct.pack("<iI", table_pos - vtable_pos, 0)
    return buffer, table_pos + 4 - start


def ioheader(width: int, height: int, stream_id: int = 0) -> bytes:
    """Size-prefixed ``IOHeader`` flatbuffer describing one ``EVTS`` stream of a ``width x height`` sensor."""
    description = (
        '<dv version="2.0"><node name="outInfo" path="/mainloop/output_file/outInfo/">'
        f'<node name="{stream_id}" path="/mainloop/output_file/outInfo/{stream_id}/">'
        '<attr key="compression" type="string">NONE</attr>'
        '<attr key="originalModuleName" type="string">capture</attr>'
        '<attr key="originalOutputName" type="string">events</attr>'
        '<attr key="typeDescription" type="string">Array of events (polarity ON/OFF).</attr>'
        '<attr key="typeIdentifier" type="string">EVTS</attr>'
        f'<node name="info" path="/mainloop/output_file/outInfo/{stream_id}/info/">'
        f'<attr key="sizeX" type="int">{width}</attr><attr key="sizeY" type="int">{height}</attr>'
        '<attr key="source" type="string">DVXplorer_test</attr>'
        "</node></node></node></dv>"
    ).encode()
    # table Ioheader {compression, file_data_position, description}: only description (field 2) is stored
    buffer, slot = _one_field_table(b"IOHE", 3, 2, start=0)
    _pad(buffer, 4)
    struct.pack_into("<I", buffer, slot, len(buffer) - slot)
    buffer += struct.pack("<I", len(description)) + description + b"\0"  # strings end with a NUL
    _pad(buffer, 8)
    return struct.pack("<I", len(buffer)) + bytes(buffer)


def event_packet(events: np.ndarray, stream_id: int = 0) -> bytes:
    """One packet: stream id, size, size-prefixed ``EventPacket`` flatbuffer of ``events`` (fields t, x, y, p)."""
    if len(events) == 0:
        raise ValueError("events must hold at least one event (the reader rejects empty packets)")
    # positions count from the start of the size-prefixed buffer, whose uint32 size comes first
    buffer, slot = _one_field_table(b"EVTS", 1, 0, start=4)
    while (4 + len(buffer) + 4) % 8:  # the Event structs after the uint32 length must be 8-aligned
        buffer += b"\0"
    struct.pack_into("<I", buffer, slot, len(buffer) - slot)
    buffer += struct.pack("<I", len(events))
    for t, x, y, p in events[["t", "x", "y", "p"]].tolist():
        buffer += EVENT.pack(int(t), int(x), int(y), bool(p))
    payload = struct.pack("<I", len(buffer)) + bytes(buffer)
    return struct.pack("<iI", stream_id, len(payload)) + payload


def write_aedat4(path: str | Path, events: np.ndarray, width: int = 128, height: int = 128,
                 packet_size: int = 0) -> None:
    """Write ``events`` (structured array with fields ``t`` microseconds, ``x``, ``y``, ``p``) to ``path`` as an
    AEDAT 4.0 file with one event stream, split into packets of ``packet_size`` events (0: one packet)."""
    if not {"t", "x", "y", "p"} <= set(events.dtype.names or ()):
        raise ValueError(f"events must be a structured array with fields t, x, y, p, got dtype {events.dtype}")
    if len(events) == 0:
        raise ValueError("events must hold at least one event, got an empty array")
    if events["x"].max() >= width or events["y"].max() >= height:
        raise ValueError(f"events must lie on the {width}x{height} sensor (x < {width}, y < {height}), got max x "
                         f"{events['x'].max()} and max y {events['y'].max()}")
    step = packet_size if packet_size > 0 else len(events)
    packets = b"".join(event_packet(events[i:i + step]) for i in range(0, len(events), step))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(MAGIC + ioheader(width, height) + packets)

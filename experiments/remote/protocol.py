"""The wire format between the laptop (``run``) and the cluster's agent: typed frames.

A frame is one type byte, a 4-byte big-endian length and the payload. JSON payloads and blobs
are zlib-compressed; the verb's output is sent as it comes.

Laptop → agent:
  ``H`` the request (JSON: versions, the verb's argv, the manifest or only its id, the git
  state, which blobs follow), ``B`` one blob (a file's content, in the order the request or
  the last ``M`` listed), ``M`` more blobs after the agent asked for them (JSON list of
  digests, or ``{"manifest": [...]}`` when it lacked the tree).

Agent → laptop (after :data:`AGENT_HELLO`, so output of the cluster's login scripts before it
is recognised as such): ``R`` a reply (JSON: ``ready``, ``missing``, ``need_manifest`` or
``error``), ``O``/``E`` the verb's stdout/stderr, ``F`` a file the verb wrote for the laptop (the
report), ``S`` where the verb serves (JSON), ``X`` the end (JSON with the exit code).

Standard library only: the agent runs it on the cluster.
"""

from __future__ import annotations

import json
import struct
import zlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import IO, Any

PROTOCOL = 1
AGENT_HELLO = b"\x00experiments-agent 1\n"
_HEAD = struct.Struct(">cI")
MAX_FRAME = 1 << 31  # a blob larger than 2 GB is far past any code snapshot limit

HEADER, BLOB, MORE = b"H", b"B", b"M"
REPLY, OUT, ERR, FILE, SERVE, EXIT = b"R", b"O", b"E", b"F", b"S", b"X"


class ProtocolError(Exception):
    """The other side sent something that is not a frame of this protocol (or hung up)."""


def frame(kind: bytes, payload: bytes) -> bytes:
    """One frame: type byte, length, payload."""
    return _HEAD.pack(kind, len(payload)) + payload


def pack_json(kind: bytes, data: Any) -> bytes:
    """A frame holding ``data`` as compressed JSON."""
    return frame(kind, zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 6))


def unpack_json(payload: bytes) -> Any:
    """The JSON value of a frame made by :func:`pack_json`."""
    try:
        return json.loads(zlib.decompress(payload))
    except (zlib.error, ValueError) as exc:
        raise ProtocolError(f"a damaged message ({exc})") from None


def pack_blob(content: bytes) -> bytes:
    """A ``B`` frame holding one file's content, compressed."""
    return frame(BLOB, zlib.compress(content, 6))


def unpack_blob(payload: bytes) -> bytes:
    """The content of a ``B`` frame."""
    try:
        return zlib.decompress(payload)
    except zlib.error as exc:
        raise ProtocolError(f"a damaged blob ({exc})") from None


def read_exact(stream: IO[bytes], n: int) -> bytes:
    """Exactly ``n`` bytes from ``stream``; ``ProtocolError`` when it ends first."""
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise ProtocolError(f"the stream ended {left} byte(s) into a {n}-byte read")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: IO[bytes]) -> tuple[bytes, bytes]:
    """The next frame's type and payload."""
    kind, size = _HEAD.unpack(read_exact(stream, _HEAD.size))
    if size > MAX_FRAME:
        raise ProtocolError(f"a frame of {size} bytes is larger than any this protocol sends")
    return kind, read_exact(stream, size)

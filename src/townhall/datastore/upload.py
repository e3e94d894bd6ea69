"""Receiving an upload: the request body streamed to a file under the data folder, hashed on the
way, never held in memory.

Takes `multipart/form-data` (the file in a part named `file`; small text fields such as `schema`
and `csrf_token` beside it) or a raw body (`curl --data-binary @trees.csv`, the file name from
the `filename` query parameter). The body size limit is the middleware's: upload routes contain
`/upload`.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from townhall.errors import TownhallError

FILE_FIELD = "file"
MAX_FIELD_BYTES = 1024 * 1024
MAX_FIELDS = 20
MAX_FILENAME_CHARS = 255


@dataclass
class ReceivedUpload:
    path: Path
    filename: str
    sha256: str
    size: int
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()


def _clean_filename(raw: str) -> str:
    # Browsers send the bare name; older IE sent a Windows path. Keep only the last part.
    name = raw.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return "".join(ch for ch in name if ch.isprintable())[:MAX_FILENAME_CHARS] or "upload"


class _MultipartSink:
    """Callbacks for python-multipart's streaming parser."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.sha256 = hashlib.sha256()
        self.size = 0
        self._file: IO[bytes] | None = None
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._is_file = False
        self._buffer = bytearray()

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self._headers = {}
        self._name = None
        self._is_file = False
        self._buffer = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field = bytearray()
        self._header_value = bytearray()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        self._name = name
        filename = options.get(b"filename")
        if name == FILE_FIELD and filename is not None:
            if self._file is not None:
                raise _bad("Send one file per upload.")
            self._is_file = True
            self.filename = _clean_filename(filename.decode("utf-8", "replace"))
            self._file = self.target.open("wb")
        elif len(self.fields) >= MAX_FIELDS:
            raise _bad("Too many form fields.")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._is_file and self._file is not None:
            # Plain writes: chunks are small (tens of KB) and land in the page cache.
            self._file.write(chunk)
            self.sha256.update(chunk)
            self.size += len(chunk)
            return
        self._buffer += chunk
        if len(self._buffer) > MAX_FIELD_BYTES:
            raise _bad(f"Form field {self._name!r} is larger than {MAX_FIELD_BYTES} bytes.")

    def on_part_end(self) -> None:
        if self._is_file:
            if self._file is not None:
                self._file.close()
            return
        if self._name:
            self.fields[self._name] = self._buffer.decode("utf-8", "replace")

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()


def _bad(message: str) -> TownhallError:
    return TownhallError(422, "invalid_request", message)


async def receive_upload(request: Request, directory: Path) -> ReceivedUpload:
    """Stream the request body into a new file in `directory`.

    Raises TownhallError: 415 for a multipart body without a boundary, 422 for a malformed
    multipart body or one without a `file` part, 400 if the client went away. The file is
    removed on any failure.
    """
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"upload-{uuid.uuid4().hex}"
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    try:
        if content_type == b"multipart/form-data":
            return await _receive_multipart(request, target, options.get(b"boundary"))
        return await _receive_raw(request, target)
    except BaseException:
        with contextlib.suppress(OSError):
            target.unlink()
        raise


async def _receive_multipart(
    request: Request, target: Path, boundary: bytes | None
) -> ReceivedUpload:
    if not boundary:
        raise TownhallError(
            415, "unsupported_media_type", "A multipart body needs a boundary parameter."
        )
    sink = _MultipartSink(target)
    try:
        parser = MultipartParser(boundary, sink.callbacks())
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as error:
        raise _bad(f"The multipart body is malformed: {error}") from error
    except ClientDisconnect as error:
        raise TownhallError(400, "invalid_request", "The upload was interrupted.") from error
    finally:
        sink.close()
    if sink.filename is None:
        raise TownhallError(
            422,
            "invalid_request",
            f"Send the file in a multipart field named {FILE_FIELD!r}.",
            errors=[{"loc": ["body", FILE_FIELD], "message": "missing", "type": "missing"}],
        )
    return ReceivedUpload(target, sink.filename, sink.sha256.hexdigest(), sink.size, sink.fields)


async def _receive_raw(request: Request, target: Path) -> ReceivedUpload:
    digest = hashlib.sha256()
    size = 0
    try:
        with target.open("wb") as handle:
            async for chunk in request.stream():
                handle.write(chunk)
                digest.update(chunk)
                size += len(chunk)
    except ClientDisconnect as error:
        raise TownhallError(400, "invalid_request", "The upload was interrupted.") from error
    filename = _clean_filename(request.query_params.get("filename", "upload"))
    return ReceivedUpload(target, filename, digest.hexdigest(), size)

"""What a source file is: its format and, for text, its encoding. Reads a sample, never the file.

Binary formats are recognised by their magic bytes (Parquet `PAR1`, xlsx is a zip holding
`xl/workbook.xml`); text by a look at its first bytes (JSON starts with `[` or `{`, GeoJSON
names a `FeatureCollection`), the file name's extension breaking ties. Encodings: a strict UTF-8
decode of the sample; failing that Windows-1252 when the sample uses its 0x80-0x9F letters
(curly quotes, the euro sign), else Latin-1. Random bytes are refused here, before DuckDB sees
them.
"""

from __future__ import annotations

import codecs
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from townhall.errors import TownhallError

SAMPLE_BYTES = 1024 * 1024
# An xlsx whose parts inflate beyond this is refused before any reader opens it.
MAX_XLSX_UNCOMPRESSED_BYTES = 1024**3
# Real spreadsheets compress 5-20x; zip bombs by thousands. Checked on parts over 1 MiB only.
MAX_XLSX_COMPRESSION_RATIO = 200
MAX_XLSX_PARTS = 10_000
TRANSCODE_CHUNK_BYTES = 4 * 1024 * 1024

Kind = Literal["csv", "json", "xlsx", "parquet", "geojson"]
KINDS: tuple[str, ...] = ("csv", "json", "xlsx", "parquet", "geojson")

_EXTENSIONS: dict[str, Kind] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".tab": "csv",
    ".txt": "csv",
    ".json": "json",
    ".ndjson": "json",
    ".jsonl": "json",
    ".geojson": "geojson",
    ".xlsx": "xlsx",
    ".parquet": "parquet",
}
# Bytes that never occur in text: C0 controls other than tab, newline, carriage return, form feed.
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")
# Bytes Windows-1252 leaves undefined: a sample holding one is Latin-1 (or not text at all).
_CP1252_UNDEFINED = frozenset(b"\x81\x8d\x8f\x90\x9d")


@dataclass(frozen=True, slots=True)
class SourceFormat:
    kind: Kind
    encoding: Literal["utf-8", "latin-1", "windows-1252"] | None = None
    """For text formats; `None` for binary ones."""
    sample_is_ascii: bool = True
    """True when the sample had no byte over 0x7F: its encoding was a guess, not evidence."""


def ingest_error(message: str, errors: list[dict[str, object]] | None = None) -> TownhallError:
    return TownhallError(422, "ingest_failed", message, errors=errors or [])


def detect_format(path: Path, source_name: str = "") -> SourceFormat:
    """Recognise `path`'s format and encoding from its first MiB and its name.

    Raises TownhallError `ingest_failed` for an empty file, binary garbage or a zip that is not
    a spreadsheet (or is a zip bomb, see `check_xlsx`).
    """
    with path.open("rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    if not sample.strip(b" \t\r\n\xef\xbb\xbf"):
        raise ingest_error("The file is empty.", [{"type": "empty-file", "row": None}])
    suffix = Path(source_name or path.name).suffix.lower()
    if sample.startswith(b"PAR1"):
        return SourceFormat("parquet")
    if sample.startswith(b"PK\x03\x04"):
        check_xlsx(path)
        return SourceFormat("xlsx")
    if suffix in (".parquet", ".xlsx"):
        raise ingest_error(
            f"The file is named {suffix} but is not one: its first bytes are not a "
            f"{'Parquet' if suffix == '.parquet' else 'zip'} header.",
            [{"type": "format-error", "row": None}],
        )
    encoding, is_ascii = _text_encoding(sample)
    text_start = sample.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    kind: Kind = _EXTENSIONS.get(suffix, "csv")
    if kind == "csv" and suffix not in _EXTENSIONS and text_start in (b"[", b"{"):
        kind = "json"
    if kind == "json" and text_start == b"{" and re.search(rb'"FeatureCollection"', sample[:65536]):
        kind = "geojson"
    return SourceFormat(kind, encoding, is_ascii)


def _text_encoding(sample: bytes) -> tuple[Literal["utf-8", "latin-1", "windows-1252"], bool]:
    if b"\x00" in sample or len(_CONTROL.findall(sample)) > max(8, len(sample) // 200):
        raise ingest_error(
            "The file is neither text (CSV, JSON) nor a known binary format (Parquet, xlsx).",
            [{"type": "encoding-error", "row": None}],
        )
    is_ascii = sample.isascii()
    try:
        # Incremental: a sample may end inside a multi-byte character.
        codecs.getincrementaldecoder("utf-8")(errors="strict").decode(sample, final=False)
    except UnicodeDecodeError as error:
        if not sample[: error.start].isascii():
            # Real UTF-8 text before a byte that is not: two encodings in one file.
            line = sample.count(b"\n", 0, error.start) + 1
            raise ingest_error(
                f"The file mixes encodings: it is UTF-8 up to line {line}, where byte "
                f"0x{sample[error.start]:02x} is not; save it again in one encoding.",
                [{"type": "encoding-error", "row": line, "byte": error.start}],
            ) from error
    else:
        return "utf-8", is_ascii
    high_controls = {byte for byte in sample if 0x80 <= byte <= 0x9F}
    if high_controls and not high_controls & _CP1252_UNDEFINED:
        return "windows-1252", False
    return "latin-1", False


def check_xlsx(path: Path) -> None:
    """Refuse a zip that is not an xlsx workbook, or whose parts would inflate too far.

    Reads only the zip's central directory (the declared sizes), before any reader inflates a
    byte. Raises TownhallError `ingest_failed`.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        raise ingest_error(
            f"The file starts like a zip (xlsx) but cannot be opened: {error}.",
            [{"type": "format-error", "row": None}],
        ) from error
    names = {part.filename for part in parts}
    if "xl/workbook.xml" not in names:
        raise ingest_error(
            "The zip file is not an Excel workbook (.xlsx): it has no xl/workbook.xml.",
            [{"type": "format-error", "row": None}],
        )
    if len(parts) > MAX_XLSX_PARTS:
        raise ingest_error(
            f"The workbook has {len(parts)} parts; at most {MAX_XLSX_PARTS} are accepted.",
            [{"type": "zip-bomb", "row": None}],
        )
    total = 0
    for part in parts:
        total += part.file_size
        ratio = part.file_size / max(part.compress_size, 1)
        if part.file_size > 1024 * 1024 and ratio > MAX_XLSX_COMPRESSION_RATIO:
            raise ingest_error(
                f"Refused as a zip bomb: part {part.filename} inflates {ratio:.0f}-fold "
                f"(to {part.file_size} bytes); real workbooks compress far less.",
                [{"type": "zip-bomb", "row": None, "part": part.filename}],
            )
    if total > MAX_XLSX_UNCOMPRESSED_BYTES:
        raise ingest_error(
            f"Refused: the workbook inflates to {total} bytes, more than the "
            f"{MAX_XLSX_UNCOMPRESSED_BYTES} accepted.",
            [{"type": "zip-bomb", "row": None}],
        )


def transcode_to_utf8(source: Path, encoding: str, target: Path) -> None:
    """Copy a text file into `target` as UTF-8, in chunks (bounded memory).

    For encodings DuckDB's CSV reader does not speak natively (Windows-1252). An undecodable
    byte raises TownhallError `ingest_failed` naming the byte offset.
    """
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0
    with source.open("rb") as reader, target.open("wb") as writer:
        while chunk := reader.read(TRANSCODE_CHUNK_BYTES):
            try:
                writer.write(decoder.decode(chunk).encode("utf-8"))
            except UnicodeDecodeError as error:
                raise ingest_error(
                    f"The file is not valid {encoding}: byte {offset + error.start} "
                    f"(0x{chunk[error.start]:02x}) cannot be decoded.",
                    [{"type": "encoding-error", "row": None, "byte": offset + error.start}],
                ) from error
            offset += len(chunk)
        writer.write(decoder.decode(b"", final=True).encode("utf-8"))

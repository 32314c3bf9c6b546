"""A backup stream into S3 multipart uploads, in pieces Aurora reads in order; resumable.

The stream (xtrabackup's, from the source's host) is cut into parts of ``part_bytes`` and sent with
``UploadPart``; every ``parts_per_piece`` parts the object is completed and the next piece starts,
named like AWS's own ``split -d`` example (``backup.xbstream00``, ``backup.xbstream01``...: "Aurora
consumes your backup files in alphabetical order and also in natural number order", AWS,
"Physical migration from MySQL by using Percona XtraBackup and Amazon S3"; an object is at most
5 TB, a multipart upload at most 10,000 parts).  Nothing is kept locally: S3 is the record.

:func:`pending` reads what S3 already holds under the backup's prefix: completed pieces and the
open multipart upload with its parts (``ListMultipartUploads``, ``ListParts``; Amazon S3 User Guide,
"Uploading and copying objects using multipart upload in Amazon S3": an upload has no expiry, its
parts stay, and are billed ("Aborting a multipart upload"), until it is completed or stopped).  An interrupted
upload is never aborted on its own: its parts stay and are listed, and :func:`upload_stream`
continues it when the stream can be read again from the byte where the parts end.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from runbook_lib.aws.calls import aws_call, aws_pages
from runbook_lib.aws.s3 import s3_objects
from runbook_lib.core.errors import RunbookError

MAX_PARTS = 10_000          # S3: parts of one multipart upload
MIN_PART = 5 * 2**20        # S3: every part but the last
MAX_PIECE = 5 * 10**12      # S3: an object (AWS: "Amazon S3 limits the size of a file ... to 5 TB")


def parts_per_piece(part_bytes: int) -> int:
    """Parts of one piece: S3's 10,000, fewer when the piece would pass 5 TB."""
    return max(1, min(MAX_PARTS, MAX_PIECE // part_bytes))


def piece_key(prefix: str, stem: str, extension: str, index: int) -> str:
    """``<prefix><stem><extension><NN>``: split -d's names (two digits, more when needed)."""
    return f"{prefix}{stem}{extension}{index:02d}"


@dataclass(frozen=True)
class Part:
    number: int
    size: int
    etag: str


@dataclass(frozen=True)
class Pending:
    """What S3 holds of one backup's stream."""

    pieces: tuple[tuple[str, int], ...] = ()     # completed objects (key, bytes), in order
    key: str = ""                                # the open multipart upload's object
    upload_id: str = ""
    parts: tuple[Part, ...] = ()

    @property
    def bytes_done(self) -> int:
        return sum(size for _, size in self.pieces) + sum(p.size for p in self.parts)

    @property
    def empty(self) -> bool:
        return not self.pieces and not self.upload_id

    def describe(self) -> str:
        if self.empty:
            return "nothing in S3 yet"
        text = f"{len(self.pieces)} piece(s) complete"
        if self.upload_id:
            text += (f", {self.key} open with {len(self.parts)} part(s) kept "
                     f"(upload id {self.upload_id[:12]}...)")
        return text + f": {self.bytes_done / 2**20:,.1f} MiB in S3"


def pending(s3: Any, bucket: str, prefix: str, stem: str, extension: str) -> Pending:
    """The completed pieces under ``prefix`` and the newest open multipart upload of the next one."""
    done = s3_objects(s3, bucket, prefix)
    pieces, index = [], 0
    while piece_key(prefix, stem, extension, index) in done:
        key = piece_key(prefix, stem, extension, index)
        pieces.append((key, done[key]))
        index += 1
    nxt = piece_key(prefix, stem, extension, index)
    uploads = [u for u in aws_pages(s3, "list_multipart_uploads", "Uploads", Bucket=bucket, Prefix=prefix)
               if u["Key"] == nxt]
    if not uploads:
        return Pending(tuple(pieces))
    upload = max(uploads, key=lambda u: u["Initiated"])
    parts = [Part(p["PartNumber"], p["Size"], p["ETag"]) for p in
             aws_pages(s3, "list_parts", "Parts", Bucket=bucket, Key=nxt, UploadId=upload["UploadId"])]
    parts.sort(key=lambda p: p.number)
    if [p.number for p in parts] != list(range(1, len(parts) + 1)):
        raise RunbookError(f"the open upload of {nxt} has a gap in its parts {[p.number for p in parts]}",
                           hint="abort it (aws s3api abort-multipart-upload) and stream the backup again")
    return Pending(tuple(pieces), nxt, upload["UploadId"], tuple(parts))


def _read_part(reader: IO[bytes], size: int) -> bytes:
    chunks, have = [], 0
    while have < size:
        chunk = reader.read(size - have)
        if not chunk:
            break
        chunks.append(chunk)
        have += len(chunk)
    return b"".join(chunks)


def upload_stream(s3: Any, bucket: str, prefix: str, stem: str, extension: str, reader: IO[bytes], *,
                  part_bytes: int, parts_per_piece: int = MAX_PARTS, resume: Pending | None = None,
                  progress: Callable[[int], Any] | None = None) -> tuple[tuple[str, int], ...]:
    """Send ``reader`` to S3 until its end; with ``resume``, ``reader`` starts at ``resume.bytes_done``.
    Returns every piece (key, bytes), those of ``resume`` first."""
    if part_bytes < MIN_PART or not 1 <= parts_per_piece <= MAX_PARTS:
        raise RunbookError(f"part size {part_bytes} B / {parts_per_piece} parts per piece is outside S3's limits")
    resume = resume or Pending()
    pieces = list(resume.pieces)
    key, upload_id, parts = resume.key, resume.upload_id, list(resume.parts)
    while True:
        chunk = _read_part(reader, part_bytes)
        if not chunk:
            break
        if not upload_id:
            key = piece_key(prefix, stem, extension, len(pieces))
            upload_id = aws_call(s3, "create_multipart_upload", Bucket=bucket, Key=key,
                                 ServerSideEncryption="AES256")["UploadId"]
        number = len(parts) + 1
        answer = aws_call(s3, "upload_part", Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number,
                          Body=chunk)
        parts.append(Part(number, len(chunk), answer["ETag"]))
        if progress:
            progress(len(chunk))
        if len(parts) == parts_per_piece:
            pieces.append(_complete(s3, bucket, key, upload_id, parts))
            key, upload_id, parts = "", "", []
    if upload_id and parts:
        pieces.append(_complete(s3, bucket, key, upload_id, parts))
    elif upload_id:
        aws_call(s3, "abort_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id)
    return tuple(pieces)


def _complete(s3: Any, bucket: str, key: str, upload_id: str, parts: list[Part]) -> tuple[str, int]:
    aws_call(s3, "complete_multipart_upload", Bucket=bucket, Key=key, UploadId=upload_id,
             MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.etag} for p in parts]})
    return key, sum(p.size for p in parts)


def discard(s3: Any, bucket: str, state: Pending) -> None:
    """Abort the open upload and delete the completed pieces (a stream that cannot be continued)."""
    if state.upload_id:
        aws_call(s3, "abort_multipart_upload", Bucket=bucket, Key=state.key, UploadId=state.upload_id)
    for key, _ in state.pieces:
        aws_call(s3, "delete_object", Bucket=bucket, Key=key)


def progress_bar(total: int | None, initial: int, desc: str):
    """A tqdm bar over bytes (its ``update`` is the ``progress`` callback)."""
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stdout,
                mininterval=1, desc=desc)

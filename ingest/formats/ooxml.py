"""Office Open XML files (.docx, .pptx, .xlsx) are zip archives of XML parts: what is checked before a parser
opens one, so that a zip bomb, an old binary file under a new name or a broken archive fails with a reason."""

from __future__ import annotations

import io
import zipfile

from ingest.document import LoadError, OfficeLimits, describe

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
"""The first bytes of an OLE compound file: the old binary .doc/.xls/.ppt, or a password-protected new one."""
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")
XML_SUFFIXES = (".xml", ".rels", ".vml")

_KINDS_BY_CONTENT_TYPE = (
    ("wordprocessingml", "a Word document (.docx)"),
    ("presentationml", "a presentation (.pptx)"),
    ("spreadsheetml", "a workbook (.xlsx)"),
)

LEGACY_SUFFIXES: dict[str, str] = {".doc": ".docx", ".ppt": ".pptx", ".xls": ".xlsx"}
"""Old binary Office formats, which Docent refuses, and the format to save them as instead."""


def legacy_refusal(suffix: str) -> str:
    """Why an old binary Office file is refused, and what to do about it."""
    new = LEGACY_SUFFIXES[suffix]
    return (
        f"{suffix} is the old binary Office format, which Docent cannot read: open it in Office or "
        f"LibreOffice, save it as {new}, and ingest that"
    )


def check_package(data: bytes, suffix: str, limits: OfficeLimits) -> None:
    """Refuse `data` unless it is a zip that unpacks within the limits; nothing is decompressed here.

    Declared sizes can be trusted for memory: zipfile never returns more than a member's declared size.
    """
    if not data:
        raise LoadError(f"not a {suffix}: the file is empty (0 bytes)")
    if data.startswith(OLE_MAGIC):
        if _ENCRYPTED_PACKAGE in data:
            raise LoadError(
                f"encrypted {suffix}: it needs a password; save a copy without one and ingest that instead"
            )
        raise LoadError(
            f"not a {suffix}: this is an old binary Office file (.doc, .xls or .ppt) under a {suffix} name; "
            f"open it in Office or LibreOffice and save it as {suffix}"
        )
    if not data.startswith(b"PK"):
        raise LoadError(
            f"not a {suffix}: not a zip archive (another kind of file, named or served as {suffix}?)"
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise LoadError(f"corrupt {suffix}: the zip archive cannot be read ({describe(exc)})") from exc
    if len(members) > limits.max_members:
        raise LoadError(
            f"{suffix} holds {len(members):,} parts, over the limit of {limits.max_members:,} (a zip bomb?)"
        )
    total = sum(member.file_size for member in members)
    if total > limits.max_unzipped_bytes:
        raise LoadError(
            f"{suffix} would unpack to {total:,} bytes, over the limit of {limits.max_unzipped_bytes:,} "
            "(a zip bomb?)"
        )
    for member in members:
        if member.filename.lower().endswith(XML_SUFFIXES) and member.file_size > limits.max_part_bytes:
            raise LoadError(
                f"{suffix} part {member.filename} would unpack to {member.file_size:,} bytes, over the limit "
                f"of {limits.max_part_bytes:,} for one XML part"
            )
    if not any(member.filename == "[Content_Types].xml" for member in members):
        raise LoadError(f"not a {suffix}: a zip archive without [Content_Types].xml, so not an Office file")


def wrong_kind(exc: Exception, suffix: str) -> LoadError:
    """python-docx's and python-pptx's "… is not a Word file, content type is '…'", said for the user."""
    content_type = str(exc).rsplit("content type is ", 1)[-1].strip("'")
    what = next((name for marker, name in _KINDS_BY_CONTENT_TYPE if marker in content_type), None)
    return LoadError(f"not a {suffix}: it is {what or repr(content_type)}, named or served as {suffix}")

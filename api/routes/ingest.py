"""POST /ingest records an ingestion job in the database and hands it to where jobs run (this process's
ingest threads, never the query path's; or, in server mode, the queue `docent worker` processes run); GET
/ingest/{job_id} reports its progress and results from the database, on any replica; DELETE /ingest/{job_id}
cancels it.

POST /ingest takes its files base64-encoded in JSON, or as `multipart/form-data` parts (`curl -F
file=@report.pdf`), streamed to temporary files within DOCENT_MAX_UPLOAD_BYTES (api/middleware/body_limit.py
counts the bytes as they arrive). Both bodies go through the same checks, auth first, and the same job.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import logging
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any, cast

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message

from api.deps import JobsDep, ResourcesDep, SettingsDep
from api.idempotency import IdempotencyKey, run_once
from api.routes import UnicodeJSONRoute
from api.schemas import (
    AUTH_ERRORS,
    FILE_NAME_PATTERN,
    INGEST_FORM,
    MAX_UPLOAD_FILES,
    SAMPLE_JOB,
    ErrorBody,
    IngestJobOut,
    IngestRequest,
    JobConflict,
    UploadedFile,
    ValidationErrorBody,
)
from api.security.auth import IngestCaller
from api.security.workspaces import visible_collection, workspace_collection
from core.storage.sources import shown_uri
from ingest.jobs import IngestJob, IngestJobs, JobConflictError, JobQueueFullError

log = logging.getLogger(__name__)

FORM_SCOPE_KEY = "docent.ingest_form"
"""Where IngestRoute leaves a multipart body's files (a `FormUpload`) for the route."""
_FILE_NAME = re.compile(FILE_NAME_PATTERN)
_TOO_MANY_FILES = f"file: at most {MAX_UPLOAD_FILES} files per request"


@dataclass
class FormUpload:
    """A multipart body's files, in temporary files, and why any other part was refused (told after auth)."""

    files: list[UploadFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class IngestRoute(UnicodeJSONRoute):
    """POST /ingest's route: a `multipart/form-data` body is parsed here, before FastAPI reads any body, its
    files streamed to temporary files; FastAPI then validates the form's other fields as the JSON body
    (`urls`, `collection`: the same checks and errors) and the route finds the files in the scope.

    Anything but JSON (or no content type) and multipart is a 415.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The JSON route's handler, given a multipart body's fields as JSON."""
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            kind = _media_type(request.headers.get("content-type", ""))
            if request.method != "POST" or kind in ("", "application/json") or kind.endswith("+json"):
                return await handler(request)
            if kind != "multipart/form-data":
                return JSONResponse(
                    {
                        "detail": f"unsupported content type {kind!r}: send application/json or"
                        " multipart/form-data"
                    },
                    status_code=415,
                )
            try:  # one file over the limit is parsed, so that the route can name the limit (a 422)
                form = await request.form(max_files=MAX_UPLOAD_FILES + 1, max_fields=2000)
            except StarletteHTTPException as exc:  # not well-formed multipart, or far too many parts
                if exc.status_code != 400:  # the body limit's 413
                    raise
                if str(exc.detail).startswith("Too many files"):
                    raise HTTPException(422, _TOO_MANY_FILES) from exc
                raise HTTPException(400, f"multipart body: {exc.detail}") from exc
            try:
                upload, fields = _split_form(form)
                scope = {**request.scope, FORM_SCOPE_KEY: upload}
                body = json.dumps(fields).encode()
                scope["headers"] = [
                    *(
                        (k, v)
                        for k, v in request.scope["headers"]
                        if k not in (b"content-type", b"content-length")
                    ),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                return await handler(Request(scope, _replay(body)))
            finally:
                await form.close()

        return route


def _media_type(header: str) -> str:
    return header.split(";", 1)[0].strip().lower()


def _replay(body: bytes) -> Callable[[], Coroutine[Any, Any, Message]]:
    """An ASGI `receive` that hands over `body` once."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def _split_form(form: FormData) -> tuple[FormUpload, dict[str, Any]]:
    """The form's files, and its other fields in the JSON body's shape (unknown fields kept, so that the
    body's model refuses them by name)."""
    upload = FormUpload()
    fields: dict[str, Any] = {}
    urls: list[str] = []
    for name, value in form.multi_items():
        if name == "file":
            if isinstance(value, UploadFile) and value.filename:
                upload.files.append(value)
            else:
                upload.problems.append(
                    "file: a part named `file` must be a file with a file name (curl -F file=@report.pdf)"
                )
        elif isinstance(value, UploadFile):
            upload.problems.append(f"{name}: only `file` parts may be files")
        elif name == "url":
            urls.append(value)
        elif name == "collection" and "collection" in fields:
            upload.problems.append("collection: give it once")
        else:
            fields[name] = value  # `collection`, or a field the body's model refuses by name
    if urls:
        fields["urls"] = urls
    if len(upload.files) > MAX_UPLOAD_FILES:
        upload.problems.append(_TOO_MANY_FILES)
    return upload, fields


def _form_uploads(upload: FormUpload) -> list[tuple[str, IO[bytes]]]:
    """Each uploaded part's safe file name and its (temporary) file; a bad part is a 422."""
    if upload.problems:
        raise HTTPException(422, "; ".join(upload.problems))
    named: list[tuple[str, IO[bytes]]] = []
    for part in upload.files:
        given = part.filename or ""
        name = Path(given.replace("\\", "/")).name
        if not _FILE_NAME.match(given) or not name or name.startswith("."):
            raise HTTPException(422, f"file: bad file name {given!r}")
        if len(name.encode("utf-8", errors="surrogatepass")) > 255:
            raise HTTPException(422, f"file: the file name {given!r} is over 255 bytes in UTF-8")
        named.append((name, cast(IO[bytes], part.file)))
    return named


def _read_all(files: list[tuple[str, IO[bytes]]]) -> list[tuple[str, bytes]]:
    """The uploaded files' bytes (blocking: run on the ingest side's thread)."""
    read: list[tuple[str, bytes]] = []
    for name, handle in files:
        handle.seek(0)
        read.append((name, handle.read()))
    return read


class FormFingerprint(BaseModel):
    """What an `Idempotency-Key` retry of a multipart request must repeat: its fields and each file's hash."""

    urls: list[str]
    collection: str | None
    files: list[tuple[str, str]]


def _decode_uploads(files: list[UploadedFile]) -> list[tuple[str, bytes]]:
    """Each upload's safe file name and bytes; a bad name or bad base64 is a 422."""
    decoded: list[tuple[str, bytes]] = []
    for upload in files:
        name = Path(upload.name.replace("\\", "/")).name
        if not name or name.startswith("."):
            raise HTTPException(422, f"files: bad file name {upload.name!r}")
        try:
            decoded.append((name, base64.b64decode(upload.content_base64, validate=True)))
        except (binascii.Error, ValueError) as exc:
            raise HTTPException(422, f"files: {upload.name!r} is not valid base64") from exc
    return decoded


router = APIRouter(route_class=IngestRoute, tags=["ingest"])


@router.post(
    "/ingest",
    status_code=202,
    response_model=IngestJobOut,
    responses={
        **AUTH_ERRORS,
        400: {"model": ErrorBody, "description": "The body is not UTF-8 JSON, or not well-formed multipart."},
        409: {"model": JobConflict, "description": "A job already runs on the collection."},
        413: {"model": ErrorBody, "description": "Body over DOCENT_MAX_UPLOAD_BYTES."},
        415: {"model": ErrorBody, "description": "A body neither JSON nor multipart/form-data."},
        422: {"model": ValidationErrorBody, "description": "Invalid body, or a bad part of a multipart one."},
        503: {
            "model": ErrorBody,
            "description": "Every running and queued ingest slot is taken (DOCENT_INGEST_MAX_RUNNING_JOBS,"
            " DOCENT_INGEST_MAX_QUEUED_JOBS), or the job queue is unreachable; Retry-After says when to try"
            " again.",
        },
    },
    openapi_extra={"requestBody": {"content": {"multipart/form-data": INGEST_FORM}}},
)
async def start_ingest(
    body: IngestRequest,
    request: Request,
    resources: ResourcesDep,
    caller: IngestCaller,
    idempotency_key: IdempotencyKey = None,
) -> IngestJobOut | Response:
    """Start ingesting URLs and files in the background; poll GET /ingest/{id}. Files come base64-encoded in
    JSON, or as `multipart/form-data` parts (`curl -F file=@report.pdf -F collection=docent`). One job per
    collection; a job over the running cap waits as `queued`. With an `Idempotency-Key`, a retry gets the
    first job back."""
    form = cast(FormUpload | None, request.scope.get(FORM_SCOPE_KEY))
    files = _form_uploads(form) if form is not None else []
    if idempotency_key is not None:
        fingerprint = body if form is None else await asyncio.to_thread(_fingerprint, body, files)
        return await run_once(
            request,
            caller,
            idempotency_key,
            fingerprint,
            lambda _run_id: _start(body, files, resources, caller),
            status_code=202,
        )
    return await _start(body, files, resources, caller)


async def _start(
    body: IngestRequest, files: list[tuple[str, IO[bytes]]], resources: ResourcesDep, caller: IngestCaller
) -> IngestJobOut | Response:
    """Check the request, claim its job with its files and hand the job to where it runs."""
    if not body.urls and not body.files and not files:
        raise HTTPException(422, "give at least one of `urls` or `files` (multipart: a `url` or `file` part)")
    if bad := [u for u in body.urls if not u.startswith(("http://", "https://"))]:
        raise HTTPException(422, f"urls: only http(s) URLs can be fetched, got {bad[0]!r}")
    if len(body.urls) > (most := resources.settings.ingest_max_urls):
        raise HTTPException(
            422, f"urls: at most {most} per request (DOCENT_INGEST_MAX_URLS), got {len(body.urls)}"
        )
    decoded = _decode_uploads(body.files)
    settings, jobs = resources.settings, resources.ingest_jobs
    collection = workspace_collection(settings, caller, body.collection)  # stored name, in its workspace
    if len(collection.encode()) > 255:  # it names the uploads' folder
        raise HTTPException(422, f"collection: {body.collection!r} is too long for this workspace's uploads")
    urls = list(body.urls)

    def claim() -> IngestJob:
        uploads = decoded + _read_all(files)
        return jobs.table.claim(collection, urls, owner=caller.id, uploads=uploads)

    try:  # the uploads go into the database with the job, on the ingest side's thread
        job = await asyncio.wrap_future(jobs.prepare(claim))
    except JobConflictError as exc:  # the running job's id only to the key that started it
        own = exc.job_id if exc.owner == caller.id else None
        return JSONResponse({"detail": str(exc), "job_id": own}, status_code=409)
    except JobQueueFullError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "30"})
    try:
        await jobs.submit(job)
    except Exception as exc:  # the workers' queue is unreachable: the job must not hold the collection
        log.warning("ingest job %s could not be queued: %s: %s", job.id, type(exc).__name__, exc)
        await asyncio.to_thread(jobs.table.finish, job.id, "failed", error="the job queue is unreachable")
        return JSONResponse(
            {"detail": "the ingest job queue is unreachable; try again later"},
            status_code=503,
            headers={"Retry-After": "30"},
        )
    return _job_out(job, settings.data_dir)


def _fingerprint(body: IngestRequest, files: list[tuple[str, IO[bytes]]]) -> FormFingerprint:
    """A multipart request's fingerprint for `Idempotency-Key` (blocking: hashes the files)."""
    digests: list[tuple[str, str]] = []
    for name, handle in files:
        handle.seek(0)
        digest = hashlib.sha256()
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
        digests.append((name, digest.hexdigest()))
    return FormFingerprint(urls=body.urls, collection=body.collection, files=digests)


JobId = Annotated[str, PathParam(description="The job's id, from POST /ingest.", examples=[SAMPLE_JOB["id"]])]
JOB_REPLIES: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    404: {"model": ErrorBody, "description": "No such job for this key."},
}


@router.get(
    "/ingest/{job_id}",
    response_model=IngestJobOut,
    responses=JOB_REPLIES,
)
async def ingest_status(
    job_id: JobId,
    jobs: JobsDep,
    settings: SettingsDep,
    caller: IngestCaller,
) -> IngestJobOut:
    """A job's progress, per-source results so far, and its summary once done (only to the key that started
    it), as the database says on whichever replica answers. Finished jobs are forgotten after
    DOCENT_INGEST_JOB_TTL_S (then 404)."""
    return _job_out(await _owned_job(jobs, job_id, caller.id), settings.data_dir)


@router.delete(
    "/ingest/{job_id}",
    response_model=IngestJobOut,
    responses=JOB_REPLIES,
)
async def cancel_ingest(
    job_id: JobId,
    jobs: JobsDep,
    settings: SettingsDep,
    caller: IngestCaller,
) -> IngestJobOut:
    """Cancel a job: a queued one is `cancelled` at once; a running one stops before its next source
    (`cancel_requested` until then), keeping the sources it already committed. A finished job is unchanged."""
    job = await _owned_job(jobs, job_id, caller.id)
    cancelled = await asyncio.to_thread(jobs.table.request_cancel, job.id)
    return _job_out(cancelled or job, settings.data_dir)


def _job_out(job: IngestJob, data_dir: Path) -> IngestJobOut:
    """A job as its owner sees it: its collection by the name the owner's workspace knows it by, and its
    sources as answers show them (core.storage.sources.shown_uri: no server paths)."""
    out = {**job.to_dict(), "collection": visible_collection(job.collection)}
    if out["current"]:
        out["current"] = shown_uri(out["current"], data_dir)
    problems = out["summary"] or {}
    listed = ("failures", "warnings", "ignored")
    for entry in [*out["results"], *(p for key in listed for p in problems.get(key, []))]:
        entry["source"] = shown_uri(entry["source"], data_dir)
    return IngestJobOut.model_validate(out)


async def _owned_job(jobs: IngestJobs, job_id: str, owner: str) -> IngestJob:
    """The job if `owner` (a key id) started it; any other key gets the same 404 as for an unknown id."""
    job = await asyncio.to_thread(jobs.table.get, job_id)
    if job is None or job.owner != owner:
        raise HTTPException(404, f"no ingest job {job_id!r}")
    return job

"""POST /ingest records an ingestion job in the database and hands it to where jobs run (this process's
ingest threads, never the query path's; or, in server mode, the queue `docent worker` processes run); GET
/ingest/{job_id} reports its progress and results from the database, on any replica; DELETE /ingest/{job_id}
cancels it."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import HTTPException, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from api.deps import JobsDep, ResourcesDep, SettingsDep
from api.idempotency import IdempotencyKey, run_once
from api.routes import docent_router
from api.schemas import (
    AUTH_ERRORS,
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

router = docent_router(tags=["ingest"])
log = logging.getLogger(__name__)


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


@router.post(
    "/ingest",
    status_code=202,
    response_model=IngestJobOut,
    responses={
        **AUTH_ERRORS,
        400: {"model": ErrorBody, "description": "The body is not UTF-8 JSON."},
        409: {"model": JobConflict, "description": "A job already runs on the collection."},
        413: {"model": ErrorBody, "description": "Body over DOCENT_MAX_UPLOAD_BYTES."},
        422: {"model": ValidationErrorBody, "description": "Invalid body."},
        503: {
            "model": ErrorBody,
            "description": "Every running and queued ingest slot is taken (DOCENT_INGEST_MAX_RUNNING_JOBS,"
            " DOCENT_INGEST_MAX_QUEUED_JOBS), or the job queue is unreachable; Retry-After says when to try"
            " again.",
        },
    },
)
async def start_ingest(
    body: IngestRequest,
    request: Request,
    resources: ResourcesDep,
    caller: IngestCaller,
    idempotency_key: IdempotencyKey = None,
) -> IngestJobOut | Response:
    """Start ingesting URLs and files in the background; poll GET /ingest/{id}. One job per collection; a job
    over the running cap waits as `queued`. With an `Idempotency-Key`, a retry gets the first job back."""
    if idempotency_key is not None:
        return await run_once(
            request,
            caller,
            idempotency_key,
            body,
            lambda _run_id: start_ingest(body, request, resources, caller),
            status_code=202,
        )
    if not body.urls and not body.files:
        raise HTTPException(422, "give at least one of `urls` or `files`")
    if bad := [u for u in body.urls if not u.startswith(("http://", "https://"))]:
        raise HTTPException(422, f"urls: only http(s) URLs can be fetched, got {bad[0]!r}")
    if len(body.urls) > (most := resources.settings.ingest_max_urls):
        raise HTTPException(
            422, f"urls: at most {most} per request (DOCENT_INGEST_MAX_URLS), got {len(body.urls)}"
        )
    uploads = _decode_uploads(body.files)
    settings, jobs = resources.settings, resources.ingest_jobs
    collection = workspace_collection(settings, caller, body.collection)  # stored name, in its workspace
    if len(collection.encode()) > 255:  # it names the uploads' folder
        raise HTTPException(422, f"collection: {body.collection!r} is too long for this workspace's uploads")
    urls = list(body.urls)
    try:  # the uploads go into the database with the job, on the ingest side's thread
        job = await asyncio.wrap_future(
            jobs.prepare(lambda: jobs.table.claim(collection, urls, owner=caller.id, uploads=uploads))
        )
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

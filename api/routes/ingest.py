"""POST /ingest starts a background ingestion job (on the ingest threads, never the query path's); GET
/ingest/{job_id} reports its progress and results; DELETE /ingest/{job_id} cancels it."""

from __future__ import annotations

import asyncio
import base64
import binascii
from pathlib import Path
from typing import Annotated, Any

from fastapi import HTTPException
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from api.deps import JobsDep, ResourcesDep, SettingsDep
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


def _save_uploads(folder: Path, files: list[tuple[str, bytes]]) -> list[str]:
    """Write uploads under `<data_dir>/uploads/<stored collection>/` (one folder per workspace's collection);
    a file's path is its source URI, so sending the same name again replaces that source (or skips it,
    unchanged)."""
    paths: list[str] = []
    for name, data in files:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
        paths.append(str((folder / name).resolve()))
    return paths


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
            " DOCENT_INGEST_MAX_QUEUED_JOBS); Retry-After says when to try again.",
        },
    },
)
async def start_ingest(
    body: IngestRequest, resources: ResourcesDep, caller: IngestCaller
) -> IngestJobOut | JSONResponse:
    """Start ingesting URLs and files in the background; poll GET /ingest/{id}. One job per collection; a job
    over the running cap waits as `queued`."""
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
    try:
        job = jobs.claim(collection, list(body.urls), owner=caller.id)
    except JobConflictError as exc:  # the running job's id only to the key that started it
        own = exc.job_id if exc.owner == caller.id else None
        return JSONResponse({"detail": str(exc), "job_id": own}, status_code=409)
    except JobQueueFullError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "30"})
    folder = settings.data_dir / "uploads" / collection
    if uploads:
        try:
            job.items += await asyncio.wrap_future(jobs.prepare(lambda: _save_uploads(folder, uploads)))
        except OSError as exc:
            jobs.fail(job, f"cannot save the uploaded files: {exc}")
            raise HTTPException(500, job.error) from exc
    jobs.start(job, resources.ingestor)
    return _job_out(job, settings.data_dir)


JobId = Annotated[
    str, PathParam(description="The job's id, from POST /ingest.", examples=[SAMPLE_JOB["id"]])
]
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
    it). Finished jobs are forgotten after DOCENT_INGEST_JOB_TTL_S (then 404)."""
    return _job_out(_owned_job(jobs, job_id, caller.id), settings.data_dir)


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
    job = _owned_job(jobs, job_id, caller.id)
    jobs.cancel(job)
    return _job_out(job, settings.data_dir)


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


def _owned_job(jobs: IngestJobs, job_id: str, owner: str) -> IngestJob:
    """The job if `owner` (a key id) started it; any other key gets the same 404 as for an unknown id."""
    job = jobs.get(job_id)
    if job is None or job.owner != owner:
        raise HTTPException(404, f"no ingest job {job_id!r}")
    return job

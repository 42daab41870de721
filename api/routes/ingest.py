"""POST /ingest starts a background ingestion job; GET /ingest/{job_id} reports its progress and results."""

from __future__ import annotations

import asyncio
import base64
import binascii
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from api.deps import JobsDep, ResourcesDep
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
from ingest.jobs import JobConflictError

router = APIRouter(tags=["ingest"])


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
    """Write uploads under `<data_dir>/uploads/<collection>/`; a file's path is its source URI, so sending
    the same name again replaces that source (or skips it, unchanged)."""
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
    },
)
async def start_ingest(
    body: IngestRequest, resources: ResourcesDep, caller: IngestCaller
) -> IngestJobOut | JSONResponse:
    """Start ingesting URLs and files in the background; poll GET /ingest/{id}. One job per collection."""
    if not body.urls and not body.files:
        raise HTTPException(422, "give at least one of `urls` or `files`")
    if bad := [u for u in body.urls if not u.startswith(("http://", "https://"))]:
        raise HTTPException(422, f"urls: only http(s) URLs can be fetched, got {bad[0]!r}")
    uploads = _decode_uploads(body.files)
    settings, jobs = resources.settings, resources.ingest_jobs
    collection = body.collection or settings.collection
    try:
        job = jobs.claim(collection, list(body.urls), owner=caller.name)
    except JobConflictError as exc:
        return JSONResponse({"detail": str(exc), "job_id": exc.job_id}, status_code=409)
    folder = settings.data_dir / "uploads" / collection
    try:
        job.items += await asyncio.to_thread(_save_uploads, folder, uploads)
    except OSError as exc:
        jobs.fail(job, f"cannot save the uploaded files: {exc}")
        raise HTTPException(500, job.error) from exc
    task = asyncio.create_task(asyncio.to_thread(jobs.run, job, resources.ingestor))
    jobs.background.add(task)
    task.add_done_callback(jobs.background.discard)
    return IngestJobOut.model_validate(job.to_dict())


@router.get(
    "/ingest/{job_id}",
    response_model=IngestJobOut,
    responses={**AUTH_ERRORS, 404: {"model": ErrorBody, "description": "No such job for this key."}},
)
async def ingest_status(
    job_id: Annotated[
        str, PathParam(description="The job's id, from POST /ingest.", examples=[SAMPLE_JOB["id"]])
    ],
    jobs: JobsDep,
    caller: IngestCaller,
) -> IngestJobOut:
    """A job's progress, per-source results so far, and its summary once done (only to the key that started
    it)."""
    job = jobs.get(job_id)
    if job is None or job.owner != caller.name:
        raise HTTPException(404, f"no ingest job {job_id!r}")
    return IngestJobOut.model_validate(job.to_dict())

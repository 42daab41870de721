"""`docent serve`: the HTTP API under uvicorn, which imports the app by name (the CLI never imports `api`)."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the HTTP API with uvicorn. Logs are JSON lines (DOCENT_LOG_FORMAT=text: plain text)."""
    import uvicorn
    from rich.console import Console

    from core.log_config import logging_config
    from core.settings import get_settings
    from core.storage.db import SchemaError, open_database
    from core.storage.keys import KeyTable, NoKeysError, open_keyring
    from core.tracing import requested_exporters

    settings = get_settings()
    try:
        log_config = logging_config(settings)
        requested_exporters()  # an OTEL_* variable Docent cannot honour is a clear error here, not at start
        # The app checks both again at start; this says what is wrong without a traceback.
        engine = open_database(settings)
        try:
            if settings.auth == "on":
                open_keyring(settings, KeyTable(engine))
        finally:
            engine.dispose()
    except (NoKeysError, SchemaError) as exc:
        Console(stderr=True, soft_wrap=True).print(f"error: {exc}", style="red", markup=False)
        raise typer.Exit(2) from exc
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    # Embedded stores are this server's alone while it runs: `docent ingest` sees the lock and says to use
    # --server with this URL (cli/server_lock.py).
    from cli.server_lock import DataDirBusyError, holding_data_dir

    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    try:
        held = (
            holding_data_dir(settings.data_dir, "server", url) if not settings.server_mode else nullcontext()
        )
        with held:
            # The observability middleware writes one access line per request (with its request id).
            uvicorn.run(
                "api.app:create_app",
                factory=True,
                host=host,
                port=port,
                log_config=log_config,
                access_log=False,
            )
    except DataDirBusyError as exc:
        Console(stderr=True, soft_wrap=True).print(f"error: {exc}", style="red", markup=False)
        raise typer.Exit(2) from exc

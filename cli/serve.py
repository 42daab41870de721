"""`docent serve`: the HTTP API under uvicorn, which imports the app by name (the CLI never imports `api`)."""

from __future__ import annotations

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
    from core.storage.keys import NoKeysError, open_keyring

    settings = get_settings()
    try:
        log_config = logging_config(settings)
        if settings.auth == "on":
            open_keyring(settings)  # the app checks again at start; this says it without a traceback
    except NoKeysError as exc:
        Console(stderr=True, soft_wrap=True).print(f"error: {exc}", style="red", markup=False)
        raise typer.Exit(2) from exc
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    # The observability middleware writes one access line per request (with its request id): not uvicorn.
    uvicorn.run(
        "api.app:create_app", factory=True, host=host, port=port, log_config=log_config, access_log=False
    )

"""Workspaces: tenants of one server. A workspace qualifies the names of its collections here, and only here;
everything stored per collection (Chroma, the keyword rows, the source records, uploads, ingest jobs) then
belongs to one workspace.

The default workspace keeps plain names, so stores made before workspaces are its collections with no data
moved; workspace `w`'s collection `c` is stored as `w--c`. A workspace name is lowercase letters and digits
with single hyphens, and a collection a caller names may not contain `--`, so a stored name has one reading.
"""

from __future__ import annotations

import re

DEFAULT_WORKSPACE = "default"
SEPARATOR = "--"
WORKSPACE_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"  # and 2-32 characters
_WORKSPACE = re.compile(WORKSPACE_PATTERN)


class WorkspaceError(ValueError):
    """A workspace or collection name that cannot be used: which one, and why."""


def validate_workspace(name: str) -> str:
    """The name, or WorkspaceError: 2-32 characters, lowercase letters and digits with single hyphens."""
    if not (2 <= len(name) <= 32 and _WORKSPACE.fullmatch(name)):
        raise WorkspaceError(
            f"invalid workspace name {name!r}: use 2-32 lowercase letters and digits, with single hyphens"
            " between them (e.g. `team-a`)"
        )
    return name


def stored_collection(workspace: str, collection: str) -> str:
    """The name a workspace's collection is stored under (the default workspace keeps the plain name)."""
    if SEPARATOR in collection:
        raise WorkspaceError(
            f"invalid collection name {collection!r}: `{SEPARATOR}` is reserved (it separates a workspace"
            " from its collection in stored names)"
        )
    if validate_workspace(workspace) == DEFAULT_WORKSPACE:
        return collection
    return f"{workspace}{SEPARATOR}{collection}"


def split_stored(stored: str) -> tuple[str, str]:
    """(workspace, collection) of a stored collection name; inverse of `stored_collection`."""
    workspace, separator, collection = stored.partition(SEPARATOR)
    if (
        separator
        and collection
        and workspace != DEFAULT_WORKSPACE
        and len(workspace) <= 32
        and _WORKSPACE.fullmatch(workspace)
    ):
        return workspace, collection
    return DEFAULT_WORKSPACE, stored

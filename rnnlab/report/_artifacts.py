"""One artifact of a run as a local file: read where it lies when the run's artifacts are on
this filesystem (MLflow's default for a sqlite or file store), else downloaded through MLflow.

Profiled on the 92-trial flagship (issue 21): MLflow's ``download_artifacts`` made a repository,
listed the folder and copied the file for each of 152 small npz files, about 3.7 s of the
report's 12-15 s on two idle cores; reading them in place costs a stat and an open each. What
is read is the same file: a local artifact location is where MLflow's own local repository
copies it from.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


def local_folder(artifact_uri: str | None) -> Path | None:
    """The run's artifact folder on this filesystem: an absolute path or a ``file:`` URI whose
    folder exists; None for anything else (a server's ``mlflow-artifacts:``, S3, a relative
    path, a folder that moved), which MLflow must resolve."""
    if not artifact_uri:
        return None
    parsed = urllib.parse.urlparse(artifact_uri)
    if parsed.scheme == "file" and parsed.netloc in ("", "localhost"):
        path = Path(urllib.request.url2pathname(parsed.path))
    elif parsed.scheme == "" and artifact_uri.startswith("/"):
        path = Path(artifact_uri)
    else:
        return None
    return path if path.is_absolute() and path.is_dir() else None


def artifact_file(client: Any, run: Any, run_id: str, name: str, folder: Path) -> Path | None:
    """The run's artifact ``name`` as a local file (``folder``: where a download goes); None
    when the run has no such artifact."""
    local = local_folder(getattr(getattr(run, "info", None), "artifact_uri", None))
    if local is not None:
        path = local / name
        return path if path.is_file() else None
    try:
        return Path(client.download_artifacts(run_id, name, str(folder)))
    except Exception:  # MLflow raises its own and OSError types for a missing artifact
        return None

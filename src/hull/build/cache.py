"""The build cache: a step is skipped when an image made by the same step on the same parent exists.

The cache is the image store itself, as in Docker's legacy builder: every step's image records
its parent (imagedb metadata) and its step (the last history entry's created_by), so a lookup
survives a daemon restart and an image that was removed is simply no longer a hit. A child
matches when its last history line is the step's, its history is one longer than the parent's
and its container config is the one the step would produce. COPY and ADD lines carry the
checksum of their sources, and RUN lines the build args they saw, so those are part of the key.
"""

import json
from typing import Any

from hull.errors import HullError
from hull.images import containerconfig as cc
from hull.images.service import ImageService


def _candidates(service: ImageService, parent_id: str | None) -> list[str]:
    if parent_id is not None:
        return service.images.children(parent_id)
    out = []
    for image_id in service.images.list():
        try:
            if service.images.get_parent(image_id) is None:
                out.append(image_id)
        except HullError:
            continue
    return out


def find(service: ImageService, parent_id: str | None, created_by: str, config: dict[str, Any]) -> str | None:
    """The newest image that this step made before on `parent_id`, or None."""
    parent_history = 0
    if parent_id is not None:
        parent_history = len(json.loads(service.images.get(parent_id)).get("history") or [])
    want = cc.normalize(config)
    best: tuple[str, str] | None = None
    for image_id in _candidates(service, parent_id):
        try:
            doc = json.loads(service.images.get(image_id))
        except (HullError, ValueError):
            continue
        history = doc.get("history") or []
        if len(history) != parent_history + 1 or history[-1].get("created_by") != created_by:
            continue
        if cc.normalize(doc.get("config")) != want:
            continue
        created = str(doc.get("created") or "")
        if best is None or created > best[0]:
            best = (created, image_id)
    return best[1] if best is not None else None

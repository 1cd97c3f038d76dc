"""PATCH bodies by content type, applied with the object model's patch functions.

The three patch types kubectl sends (merge, JSON, strategic merge) are implemented in
``netemu.api.patch``; this module only maps the HTTP content type to the right one and turns a
patch that cannot apply into a 4xx, never a 500.
"""

from __future__ import annotations

from typing import Any

from netemu.api import errors
from netemu.api import patch as model_patch
from netemu.apiserver.body import JSON_PATCH, MERGE_PATCH, STRATEGIC_PATCH


def apply_patch(content_type: str, original: dict[str, Any], patch_doc: Any, kind: str) -> Any:
    """The patched object; raises BadRequest / UnsupportedMediaType / Invalid for bad patches."""
    try:
        if content_type == MERGE_PATCH:
            return model_patch.merge_patch(original, patch_doc)
        if content_type == JSON_PATCH:
            return model_patch.json_patch(original, patch_doc)
        if content_type == STRATEGIC_PATCH:
            return model_patch.strategic_merge_patch(original, patch_doc, kind)
    except errors.StatusError:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise errors.BadRequest(f"the patch could not be applied: {exc}") from None
    raise errors.UnsupportedMediaType(f"unsupported patch type {content_type!r}")

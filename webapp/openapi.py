"""The OpenAPI document served at ``/api/v1/openapi.json``.

The document is the data file ``openapi.yaml`` next to this module, read once; a few
values come from the app's settings and are filled in by :func:`openapi_document`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

import liquidity_core

DOCUMENT_PATH = Path(__file__).with_name("openapi.yaml")


@lru_cache(maxsize=1)
def _template() -> dict:
    with DOCUMENT_PATH.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def schemas() -> dict:
    """The document's ``components.schemas`` (read only: shared, do not modify)."""
    return _template()["components"]["schemas"]


#: The documented one-row request (CoinGecko field names); the web tests send it too.
EXAMPLE_ROW: dict = dict(
    _template()["paths"]["/api/v1/predict"]["post"]["requestBody"]["content"]["application/json"][
        "example"
    ]
)


def openapi_document(config: Mapping[str, Any]) -> dict:
    """The document with this app's values filled in.

    Parameters
    ----------
    config : mapping
        The Flask config: ``MAX_BATCH_ROWS``, ``MAX_CONTENT_LENGTH`` and, when present,
        ``SETTINGS`` (whose ``api_keys`` decide whether POSTs need a key).

    Returns
    -------
    dict
        A fresh copy; the caller may change it.
    """
    doc = copy.deepcopy(_template())
    max_rows = int(config["MAX_BATCH_ROWS"])
    max_bytes = int(config["MAX_CONTENT_LENGTH"])
    settings = config.get("SETTINGS")
    keys_required = bool(settings is not None and (settings.api_keys or "").strip())

    doc["info"]["version"] = liquidity_core.__version__
    predict = doc["paths"]["/api/v1/predict"]["post"]
    body = predict["requestBody"]
    body["description"] = f"At most {max_rows} rows and {max_bytes} bytes."
    body["content"]["application/json"]["schema"]["oneOf"][1]["maxItems"] = max_rows
    predict["security"] = [{"apiKey": []}] if keys_required else [{}, {"apiKey": []}]
    return doc

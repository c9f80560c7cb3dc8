"""GET /docs: Swagger UI from vendored files (swagger-ui-dist 5.35.0, Apache-2.0), under the dashboard's CSP.

FastAPI's own /docs page loads Swagger UI from a CDN and starts it with an inline script, so it is blank
offline and cannot carry a strict Content-Security-Policy; this page loads the same UI from the app and
starts it from a file. /redoc is not served (it too would come from a CDN).
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Final

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from service.routes.metrics import DASHBOARD_CSP

STATIC_DIR: Final[Path] = Path(__file__).resolve().parent / "static"
STATIC_URL: Final[str] = "/docs/static"
SWAGGER_UI_VERSION: Final[str] = "5.35.0"


def docs_page(title: str, openapi_url: str) -> str:
    """The HTML of the documentation page: the vendored Swagger UI, started by docs.js."""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}: API documentation</title>
<link rel="icon" type="image/png" href="{STATIC_URL}/favicon-32x32.png">
<link rel="stylesheet" href="{STATIC_URL}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{escape(openapi_url)}"></div>
<script src="{STATIC_URL}/swagger-ui-bundle.js"></script>
<script src="{STATIC_URL}/docs.js"></script>
</body>
</html>
"""


def install_docs(app: FastAPI, assets: StaticFiles) -> None:
    """Serve /docs, and its assets (files of STATIC_DIR) from `assets` (create the app with docs_url=None)."""
    page = docs_page(app.title, app.openapi_url or "/openapi.json")
    app.mount(STATIC_URL, assets, name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": DASHBOARD_CSP})

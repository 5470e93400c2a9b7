"""API docs (Swagger UI) served from our own static files: the product runs on isolated
building networks, where drf-spectacular's default CDN links would leave a blank page."""

from __future__ import annotations

from django.templatetags.static import static
from drf_spectacular.views import SpectacularSwaggerView

VENDOR = "discovery/vendor/swagger-ui/"


class OfflineSwaggerView(SpectacularSwaggerView):
    @staticmethod
    def _swagger_ui_resource(filename: str) -> str:
        return static(VENDOR + filename)

    @staticmethod
    def _swagger_ui_favicon() -> str:
        return static(VENDOR + "favicon-32x32.png")

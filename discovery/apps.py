from django.apps import AppConfig


class DiscoveryConfig(AppConfig):
    name = "discovery"
    verbose_name = "BACnet discovery"

    def ready(self) -> None:
        from django.conf import settings

        from bacnet_project.platform_detection import log_backend_choice

        log_backend_choice(settings.BACNET_BACKEND, settings.BACNET_BACKEND_REASON)

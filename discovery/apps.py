from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DiscoveryConfig(AppConfig):
    name = "discovery"
    verbose_name = "BACnet discovery"

    def ready(self) -> None:
        from django.conf import settings

        from bacnet_project.platform_detection import log_backend_choice
        from discovery import checks  # noqa: F401  (registers the BACnet settings checks)
        from discovery.schedules import install_default_schedules

        log_backend_choice(settings.BACNET_BACKEND, settings.BACNET_BACKEND_REASON)
        post_migrate.connect(install_default_schedules, sender=self)

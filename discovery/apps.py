from django.apps import AppConfig
from django.db.models.signals import post_migrate, post_save


class DiscoveryConfig(AppConfig):
    name = "discovery"
    verbose_name = "BACnet discovery"

    def ready(self) -> None:
        from django.conf import settings

        from bacnet_project.platform_detection import log_backend_choice
        from discovery import checks  # noqa: F401  (registers the BACnet settings checks)
        from discovery.command_models import install_operators_group
        from discovery.schedules import install_default_schedules
        from discovery.sites import on_site_saved

        log_backend_choice(settings.BACNET_BACKEND, settings.BACNET_BACKEND_REASON)
        post_migrate.connect(install_default_schedules, sender=self)
        # After Django's own permissions (auth's handler runs first): also after a flush.
        post_migrate.connect(install_operators_group, sender=self)
        # A new site gets its own collection schedule (its own windows, on its queue).
        post_save.connect(on_site_saved, sender="discovery.Site")

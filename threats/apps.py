from django.apps import AppConfig


class ThreatsConfig(AppConfig):
    name = "threats"
    verbose_name = "Threat signatures and releases"

    def ready(self) -> None:
        from portal.dashboard import PROVIDERS
        from threats.dashboard import signatures_panel

        if signatures_panel not in PROVIDERS:
            PROVIDERS.append(signatures_panel)

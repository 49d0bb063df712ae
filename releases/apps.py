from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"
    verbose_name = "Releases, the update feed and devices"

    def ready(self) -> None:
        from portal.dashboard import PROVIDERS
        from releases.dashboard import releases_panel

        if releases_panel not in PROVIDERS:
            PROVIDERS.append(releases_panel)

from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"
    verbose_name = "Releases, the update feed and devices"

    def ready(self) -> None:
        from portal.dashboard import PROVIDERS
        from portal.metrics import register_fleet_metrics
        from releases.dashboard import releases_panel
        from releases.metrics import release_metrics

        if releases_panel not in PROVIDERS:
            PROVIDERS.append(releases_panel)
        register_fleet_metrics("releases", release_metrics)
        # the signature page's "Detections from phones" section (threats never imports us)
        from releases.views import signature_auto_halts_panel, signature_detections_panel
        from threats.public import register_signature_panel

        register_signature_panel(signature_detections_panel)
        register_signature_panel(signature_auto_halts_panel)

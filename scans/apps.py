from django.apps import AppConfig


class ScansConfig(AppConfig):
    name = "scans"
    verbose_name = "Samples, scans and retro-hunts"

    def ready(self) -> None:
        from portal.dashboard import PROVIDERS
        from scans import tasks  # noqa: F401 - connects the worker_ready recovery hook
        from scans.selectors import dashboard_panels

        if dashboard_panels not in PROVIDERS:
            PROVIDERS.append(dashboard_panels)

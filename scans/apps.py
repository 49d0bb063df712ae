from django.apps import AppConfig


class ScansConfig(AppConfig):
    name = "scans"
    verbose_name = "Samples, scans and retro-hunts"

from django.apps import AppConfig


class ThreatsConfig(AppConfig):
    name = "threats"
    verbose_name = "Threat signatures and releases"

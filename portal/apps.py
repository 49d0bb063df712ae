from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal: accounts, audit log, health"

    def ready(self) -> None:
        from django.urls import register_converter
        from django.urls.converters import get_converters

        from portal.params import IdConverter

        # <id:pk> in every app's URLs: ids out of range are 404, never a database overflow
        if "id" not in get_converters():
            register_converter(IdConverter, "id")

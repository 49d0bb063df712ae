from typing import Any

from django.apps import AppConfig


class LivehuntConfig(AppConfig):
    name = "livehunt"
    verbose_name = "Livehunt: watch rules on new samples"

    def ready(self) -> None:
        from livehunt import tasks  # noqa: F401 - registers the tasks with Celery
        from scans.public import register_scan_succeeded

        # scans calls this after each successful scan; scans never imports livehunt
        register_scan_succeeded(on_scan_succeeded)


def on_scan_succeeded(done: Any) -> None:
    from livehunt.services import watch_enqueue

    watch_enqueue(scan_id=done.scan_id, sample_id=done.sample_id)

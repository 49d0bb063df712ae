"""The scan and hunt tasks' time limits come from settings, read when the app is configured."""

from __future__ import annotations

from celery import Celery
from django.conf import settings
from django.test import override_settings

from portal.celery import app
from scans import tasks


def test_scan_and_hunt_tasks_stop_at_the_limits_in_settings() -> None:
    # given the portal's Celery app, configured from Django settings
    # then a scan or a hunt chunk is stopped at the soft and hard limits the settings name
    for task in (tasks.scan_sample, tasks.hunt_chunk):
        assert task.soft_time_limit == settings.CELERY_TASK_SOFT_TIME_LIMIT
        assert task.time_limit == settings.CELERY_TASK_TIME_LIMIT
    assert app.conf.task_soft_time_limit == settings.CELERY_TASK_SOFT_TIME_LIMIT
    assert app.conf.task_time_limit == settings.CELERY_TASK_TIME_LIMIT


def test_limits_are_read_when_an_app_is_configured_not_when_tasks_is_imported() -> None:
    # given scans.tasks already imported, and other limits in settings afterwards
    with override_settings(CELERY_TASK_SOFT_TIME_LIMIT=7, CELERY_TASK_TIME_LIMIT=9):
        # when a Celery app is configured the way portal.celery does it
        other = Celery("limits", set_as_current=False)
        other.config_from_object("django.conf:settings", namespace="CELERY")
        # then its scan and hunt tasks take the new limits
        for name in ("scans.scan_sample", "scans.hunt_chunk"):
            assert other.tasks[name].soft_time_limit == 7
            assert other.tasks[name].time_limit == 9

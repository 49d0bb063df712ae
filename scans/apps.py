from typing import Any

from django.apps import AppConfig


class ScansConfig(AppConfig):
    name = "scans"
    verbose_name = "Samples, scans and retro-hunts"

    def ready(self) -> None:
        from portal.dashboard import PROVIDERS
        from portal.metrics import register_fleet_metrics
        from scans import tasks  # noqa: F401 - connects the worker_ready recovery hook
        from scans.gates import CLEAN_CORPUS_GATE
        from scans.metrics import hunt_chunk_metrics, scan_metrics
        from scans.selectors import dashboard_panels
        from threats.gates import set_gate_provider

        if dashboard_panels not in PROVIDERS:
            PROVIDERS.append(dashboard_panels)
        register_fleet_metrics("scans", scan_metrics)
        register_fleet_metrics("hunt_chunks", hunt_chunk_metrics)
        # the clean-corpus gate of approvals, of submissions and of pages (threats cannot
        # import scans; see threats/gates.py)
        set_gate_provider(CLEAN_CORPUS_GATE)
        # the signature page's "Samples it hit" (threats never imports scans)
        from scans.search import signature_samples_panel
        from threats.public import register_signature_panel

        register_signature_panel(signature_samples_panel)
        # current verdicts follow the current release (scans/verdicts.py)
        from releases.public import current_release_changed

        current_release_changed.connect(_release_changed, dispatch_uid="scans.verdicts")


def _release_changed(**kwargs: Any) -> None:
    from scans.tasks import verdicts_sync

    verdicts_sync.delay()

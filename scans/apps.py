from typing import Any

from django.apps import AppConfig


class ScansConfig(AppConfig):
    name = "scans"
    verbose_name = "Samples, scans and retro-hunts"

    def ready(self) -> None:
        from portal.dashboard import PROVIDERS
        from portal.metrics import register_fleet_metrics
        from scans import tasks  # noqa: F401 - connects the worker_ready recovery hook
        from scans.gates import (
            clean_corpus_gate,
            clean_corpus_gate_many,
            gate_detail,
            gate_states,
        )
        from scans.metrics import hunt_chunk_metrics, scan_metrics
        from scans.selectors import dashboard_panels
        from threats.gates import (
            GateView,
            register,
            register_gate_view,
            register_runner,
            register_submit_hook,
        )

        if dashboard_panels not in PROVIDERS:
            PROVIDERS.append(dashboard_panels)
        register_fleet_metrics("scans", scan_metrics)
        register_fleet_metrics("hunt_chunks", hunt_chunk_metrics)
        # the clean-corpus gate on approvals (threats cannot import scans; see threats/gates.py)
        register(clean_corpus_gate, many=clean_corpus_gate_many)
        register_runner(_run_gate_hunt)
        register_submit_hook(gate_hunt_on_submit)
        register_gate_view(GateView(states=gate_states, detail=gate_detail))
        # the signature page's "Samples it hit" (threats never imports scans)
        from scans.search import signature_samples_panel
        from threats.api import register_signature_panel

        register_signature_panel(signature_samples_panel)
        # current verdicts follow the current release (scans/verdicts.py)
        from releases.api import current_release_changed

        current_release_changed.connect(_release_changed, dispatch_uid="scans.verdicts")


def _release_changed(**kwargs: Any) -> None:
    from scans.tasks import verdicts_sync

    verdicts_sync.delay()


def gate_hunt_on_submit(*, revision_ids: list[int], actor: Any) -> object:
    """ONE gate hunt of every revision submitted together, on queue ``hunts`` (threats calls
    this after commit); each revision gets its own gate result when the hunt finishes."""
    from scans.retrohunts import gate_hunt_create

    user = actor if actor is not None and actor.has_perm("scans.add_retrohunt") else None
    return gate_hunt_create(user=user, revision_ids=revision_ids)


def _run_gate_hunt(revision_ids: list[int]) -> object:
    from scans.retrohunts import retrohunt_run_sync

    return retrohunt_run_sync(user=None, revision_ids=revision_ids, limit=None)

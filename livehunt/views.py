"""Pages of livehunt: the list with its create form, and a rule's page with recent hits.

Any portal role may open them (auditors read, see policies.py); only researchers,
reviewers and admins see the form, and a POST from anyone else is 403."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from engine.kinds import REGISTRY
from livehunt import policies
from livehunt.models import WatchRule
from livehunt.selectors import rule_deliveries, rule_get, rule_hits, rule_list
from livehunt.services import (
    DEFAULT_DAYS,
    max_days,
    watch_rule_create,
    watch_rule_delete,
    watch_rule_update,
)
from portal.exceptions import ApplicationError
from portal.models import User
from portal.params import parse_id, parse_int
from portal.parsers import json_loads_bounded


def _user(request: HttpRequest) -> User:
    user = request.user
    if not policies.can_view(user):
        raise PermissionDenied
    assert isinstance(user, User)
    return user


def _body(kind: str, text: str) -> Any:
    """What the form's text means (as the signature editor reads it)."""
    if kind == "yara":
        return text
    try:
        return json_loads_bounded(text)
    except json.JSONDecodeError:
        return text.strip()


def _create(request: HttpRequest, user: User) -> WatchRule:
    post = request.POST
    days = parse_int(post.get("days") or DEFAULT_DAYS, field="days", lowest=1, highest=max_days())
    revision = (post.get("revision_id") or "").strip()
    common: dict[str, Any] = {
        "user": user,
        "name": post.get("name", ""),
        "expires_at": timezone.now() + timedelta(days=days),
        "webhook_url": post.get("webhook_url", ""),
    }
    if revision:
        return watch_rule_create(revision_id=parse_id(revision, field="revision_id"), **common)
    kind = post.get("kind", "")
    return watch_rule_create(kind=kind, body=_body(kind, post.get("body", "")), **common)


@require_http_methods(["GET", "POST"])
def rule_list_view(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    can_write = policies.can_write(user)
    form: dict[str, Any] = {"days": DEFAULT_DAYS, "kind": "yara"}
    status = 200
    if request.method == "POST":
        if not can_write:
            raise PermissionDenied
        try:
            rule = _create(request, user)
        except ApplicationError as exc:
            messages.error(request, f"The watch rule was not saved: {exc.message}")
            status = 400
            form = {k: request.POST.get(k, "") for k in request.POST if k != "csrfmiddlewaretoken"}
        else:
            messages.success(
                request, f"Watching with “{rule.name}” until {rule.expires_at:%Y-%m-%d}."
            )
            return redirect("livehunt:rule-detail", rule_id=rule.pk)
    page = Paginator(rule_list(user=user), 50).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "can_write": can_write,
        "sees_all": policies.sees_all(user),
        "kinds": [(k.name, k.label) for k in REGISTRY.values()],
        "form": form,
        "max_days": max_days(),
        "now": timezone.now(),
    }
    return render(request, "livehunt/rule_list.html", context, status=status)


@require_http_methods(["GET", "POST"])
def rule_detail_view(request: HttpRequest, rule_id: int) -> HttpResponse:
    user = _user(request)
    rule = rule_get(user=user, rule_id=rule_id)
    if rule is None:
        raise Http404("No such watch rule.")
    can_change = policies.can_change(user, rule)
    if request.method == "POST":
        if not can_change:
            raise PermissionDenied
        action = request.POST.get("action", "")
        try:
            if action == "delete":
                watch_rule_delete(rule=rule, user=user)
                messages.success(request, f"Deleted the watch rule “{rule.name}”.")
                return redirect("livehunt:rule-list")
            if action in ("enable", "disable"):
                watch_rule_update(rule=rule, user=user, enabled=action == "enable")
            elif action == "extend":
                days = parse_int(
                    request.POST.get("days") or DEFAULT_DAYS,
                    field="days",
                    lowest=1,
                    highest=max_days(),
                )
                watch_rule_update(
                    rule=rule, user=user, expires_at=timezone.now() + timedelta(days=days)
                )
            else:
                messages.error(request, "Unknown action.")
        except ApplicationError as exc:
            messages.error(request, exc.message)
        return redirect("livehunt:rule-detail", rule_id=rule.pk)
    hits = Paginator(rule_hits(rule=rule), 50).get_page(request.GET.get("page"))
    context = {
        "rule": rule,
        "hits": hits,
        "deliveries": rule_deliveries(rule=rule) if can_change else [],
        "can_change": can_change,
        "active": rule.enabled and rule.expires_at > timezone.now(),
        "body_text": rule.body if isinstance(rule.body, str) else json.dumps(rule.body, indent=2),
        "max_days": max_days(),
        "default_days": DEFAULT_DAYS,
    }
    return render(request, "livehunt/rule_detail.html", context)

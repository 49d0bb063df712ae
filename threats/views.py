"""Pages of the threats app. Thin: selectors read, services write, templates show.

Every page needs a Django permission (the site middleware already forces log-in); the
workflow rules (own drafts, four eyes) are ``threats.policy``, which the services enforce and
the pages read to decide which buttons to show.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_POST
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import JsonLexer, YaraLexer

from engine.kinds import REGISTRY
from engine.kinds.base import Issue
from portal.exceptions import ApplicationError, NotFoundError
from portal.htmx import is_htmx
from portal.models import User
from portal.params import ParameterError, parse_id, parse_ids
from portal.parsers import json_loads_bounded
from threats import gates, policy, selectors, services
from threats.models import (
    Category,
    Family,
    Severity,
    Signature,
    SignatureRevision,
    Status,
    signature_name,
)
from threats.public import signature_panels

PAGE_SIZE = 50
_FORMATTER = HtmlFormatter(linenos="table", cssclass="code", wrapcode=True)


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _signature(pk: int) -> Signature:
    try:
        return selectors.signature_get(pk=pk)
    except NotFoundError:
        raise Http404("No such signature.") from None


def _family(pk: int) -> Family:
    try:
        return selectors.family_get(pk=pk)
    except NotFoundError:
        raise Http404("No such family.") from None


def highlighted(kind: str, text: str) -> SafeString:
    """The body as HTML, highlighted server-side by Pygments (escapes everything itself)."""
    lexer = YaraLexer() if kind == "yara" else JsonLexer()
    return mark_safe(highlight(text, lexer, _FORMATTER))  # noqa: S308 - Pygments escapes


def _parse_body(kind: str, text: str) -> Any:
    """What the editor's text means: YARA source as is; JSON for other kinds, or a bare
    string (a hash, a domain) when it is not JSON. JSON nested too deep is an
    ApplicationError (the callers show it)."""
    if kind == "yara":
        return text
    try:
        return json_loads_bounded(text)
    except json.JSONDecodeError:
        return text.strip()


def _family_choice(value: str) -> Family | None:
    try:
        return Family.objects.filter(pk=parse_id(value, field="family")).first()
    except ParameterError:
        return None


def _tags(text: str) -> list[str]:
    return [t.strip() for t in text.replace(",", " ").split() if t.strip()]


# --- lists -----------------------------------------------------------------------------------
@permission_required("threats.view_signature", raise_exception=True)
@require_GET
def signature_list_view(request: HttpRequest) -> HttpResponse:
    filterset = selectors.signature_list(filters=request.GET.dict())
    rows = filterset.qs if filterset.is_valid() else Signature.objects.none()
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = selectors.with_rule_names(page.object_list)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "filter": filterset,
        "page": page,
        "query": query.urlencode(),
        "kinds": list(REGISTRY),
        "statuses": Status.choices,
        "severities": Severity.choices,
        "families": Family.objects.values_list("pk", "name"),
        "bulk_actions": _bulk_actions(_user(request)),
        "title": "Signatures",
    }
    template = "threats/_signature_rows.html" if is_htmx(request) else "threats/signature_list.html"
    return render(request, template, context)


def _bulk_actions(user: User) -> list[str]:
    return list(policy.bulk_actions(user))


@permission_required("threats.view_signature", raise_exception=True)
@require_POST
def signature_bulk_view(request: HttpRequest) -> HttpResponse:
    action = request.POST.get("action", "")
    back = request.POST.get("next") or "threats:signature-list"
    try:
        ids = parse_ids(request.POST.getlist("ids"), field="ids")
    except ParameterError as exc:
        messages.error(request, exc.message)
        return redirect(back if back.startswith("/") else "threats:signature-list")
    if action not in _bulk_actions(_user(request)):
        messages.error(request, "Your role does not allow that action.")
        return redirect(back if back.startswith("/") else "threats:signature-list")
    if not ids:
        messages.error(request, "Tick at least one signature.")
        return redirect(back if back.startswith("/") else "threats:signature-list")
    try:
        result = services.signature_bulk_action(
            actor=_user(request), ids=ids, action=action, reason=request.POST.get("reason", "")
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        if result.succeeded:
            messages.success(request, f"{action}: {len(result.succeeded)} signature(s) done.")
        for failure in result.failed[:20]:
            messages.error(request, f"#{failure['id']}: {failure['message']}")
        if len(result.failed) > 20:
            messages.error(request, f"… and {len(result.failed) - 20} more refused.")
    return redirect(back if back.startswith("/") else "threats:signature-list")


@permission_required("threats.review_signature", raise_exception=True)
@require_GET
def review_queue_view(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    everyone = selectors.review_queue(user=user)
    clean_only = request.GET.get("clean_hits", "") in ("1", "true", "on")
    queue = selectors.with_clean_hits(everyone) if clean_only else everyone
    page = Paginator(queue, PAGE_SIZE).get_page(request.GET.get("page"))
    _with_gate_states(page)
    page.object_list = selectors.with_rule_names(page.object_list)
    # the queue's bulk actions: review steps, and marking noisy where the role may
    actions = [a for a in policy.bulk_actions(user) if a in ("approve", "reject", "noisy")]
    return render(
        request,
        "threats/review_queue.html",
        {
            "page": page,
            "query": "clean_hits=1" if clean_only else "",
            "clean_only": clean_only,
            "with_clean_hits": selectors.with_clean_hits(everyone).count(),
            "show_gate": True,
            "bulk_actions": actions,
            "own_waiting": selectors.review_queue().count() - everyone.count(),
        },
    )


def _with_gate_states(page: Any) -> None:
    """Set ``gate_state`` on each signature of the page (a fixed number of queries)."""
    page.object_list = list(page.object_list)
    revisions = [s.current_revision for s in page.object_list if s.current_revision]
    states = gates.gate_states(revisions)
    for sig in page.object_list:
        sig.gate_state = states.get(sig.current_revision_id, "not_gated")


# --- one signature ---------------------------------------------------------------------------
# the status buttons of the signature page, in order: label, and whether a reason is required
_BUTTONS = {
    "submit": ("Submit for review", False),
    "approve": ("Approve", False),
    "reject": ("Reject", True),
    "noisy": ("Mark noisy", True),
    "disable": ("Disable", True),
}


def _actions(allowed: frozenset[str], gate: gates.GateDetail | None = None) -> list[dict[str, Any]]:
    """The status buttons for the actions ``threats.policy`` allows this viewer now."""
    out: list[dict[str, Any]] = []
    for name, (label, reason) in _BUTTONS.items():
        if name not in allowed:
            continue
        button: dict[str, Any] = {"name": name, "label": label, "reason": reason}
        if name == "approve":
            # the override field appears when clean hits, or too small a clean corpus, block
            # the approval (the gate decides)
            button["override"] = gate is not None and gate.gate in (
                "clean_hits",
                "no_clean_corpus",
            )
        out.append(button)
    return out


@permission_required("threats.view_signature", raise_exception=True)
@require_GET
def signature_detail_view(request: HttpRequest, pk: int) -> HttpResponse:
    sig = _signature(pk)
    user = _user(request)
    rev = sig.current_revision
    body = selectors.body_text(rev.body) if rev else ""
    history = selectors.signature_history(signature=sig)
    allowed = policy.allowed_actions(user, sig)
    gate = gates.gate_detail(rev) if rev is not None and sig.status != Status.INVALID else None
    shipping = sig.deployed_revision
    return render(
        request,
        "threats/signature_detail.html",
        {
            "gate": gate,
            "signature": sig,
            "revision": rev,
            "body_html": highlighted(sig.kind, body),
            "history": [{"entry": h, "diff_html": _diff_html(h.diff)} for h in history],
            "actions": _actions(allowed, gate),
            "may_edit": "edit" in allowed,
            "may_delete": "delete" in allowed,
            "tags": [t.name for t in sig.tags.all()],
            "pending": rev is not None and sig.deployed_revision_id not in (None, rev.pk),
            "shipping": shipping,
            "shipping_name": _revision_name(sig, shipping) if shipping is not None else "",
            # sections other apps add (threats.public.register_signature_panel)
            "panels": signature_panels(signature_id=sig.pk, user=user),
        },
    )


def _revision_name(sig: Signature, rev: SignatureRevision) -> str:
    return signature_name(
        category=rev.family.category,
        family=rev.family.name,
        signature_id=sig.pk,
        revision=rev.number,
    )


def _diff_html(diff: str) -> SafeString:
    if not diff:
        return mark_safe("")
    lines = []
    for line in diff.splitlines():
        css = ""
        if line.startswith("+") and not line.startswith("+++"):
            css = "add"
        elif line.startswith("-") and not line.startswith("---"):
            css = "del"
        elif line.startswith("@@"):
            css = "hunk"
        lines.append(f'<span class="{css}">{escape(line)}</span>')
    return mark_safe('<pre class="diff">' + "\n".join(lines) + "</pre>")  # noqa: S308 - escaped


@permission_required("threats.view_signature", raise_exception=True)
@require_POST
def signature_action_view(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    sig = _signature(pk)
    user = _user(request)
    reason = request.POST.get("reason", "")
    calls = {
        "submit": lambda: services.signature_submit(signature=sig, actor=user, reason=reason),
        "approve": lambda: services.signature_approve(
            signature=sig,
            actor=user,
            comment=reason,
            override_reason=request.POST.get("override_reason", ""),
        ),
        "reject": lambda: services.signature_reject(signature=sig, actor=user, reason=reason),
        "noisy": lambda: services.signature_mark_noisy(signature=sig, actor=user, reason=reason),
        "disable": lambda: services.signature_disable(signature=sig, actor=user, reason=reason),
    }
    if action == "delete":
        try:
            services.signature_delete(signature=sig, actor=user)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect("threats:signature-detail", pk=pk)
        messages.success(request, f"Deleted signature #{pk}.")
        return redirect("threats:signature-list")
    if action not in calls:
        messages.error(request, f"Unknown action {action!r}.")
        return redirect("threats:signature-detail", pk=pk)
    try:
        calls[action]()
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{sig.name}: {action} done.")
    return redirect("threats:signature-detail", pk=pk)


# --- the editor ------------------------------------------------------------------------------
def _editor_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    return {
        "kinds": [(k.name, k.label, k.description) for k in REGISTRY.values()],
        "families": Family.objects.values_list("pk", "name"),
        "severities": Severity.choices,
        **extra,
    }


@permission_required("threats.add_signature", raise_exception=True)
def signature_new_view(request: HttpRequest) -> HttpResponse:
    form = {
        "kind": request.POST.get("kind", request.GET.get("kind", "yara")),
        "family": request.POST.get("family", request.GET.get("family", "")),
        "severity": request.POST.get("severity", ""),
        "tags": request.POST.get("tags", ""),
        "description": request.POST.get("description", ""),
        "body": request.POST.get("body", ""),
    }
    error: dict[str, Any] | None = None
    if request.method == "POST":
        try:
            family = _family_choice(form["family"])
            if family is None:
                raise ApplicationError("Choose a family.")
            sig = services.signature_create(
                actor=_user(request),
                kind=form["kind"],
                body=_parse_body(form["kind"], form["body"]),
                family=family,
                severity=form["severity"] or None,
                tags=_tags(form["tags"]),
                description=form["description"],
            )
        except ApplicationError as exc:
            error = {"message": exc.message, "extra": exc.extra}
        else:
            messages.success(request, f"Saved {sig.name} as a draft.")
            return redirect("threats:signature-detail", pk=sig.pk)
    return render(
        request,
        "threats/signature_editor.html",
        _editor_context(request, form=form, error=error, signature=None),
        status=400 if error else 200,
    )


@permission_required("threats.change_signature", raise_exception=True)
def signature_edit_view(request: HttpRequest, pk: int) -> HttpResponse:
    sig = _signature(pk)
    rev = sig.current_revision
    form = {
        "kind": sig.kind,
        "family": str(sig.family_id),
        "severity": sig.severity,
        "tags": " ".join(t.name for t in sig.tags.all()),
        "description": sig.description,
        # an invalid import keeps its rule text (str) to be fixed here; older ones kept none
        "body": selectors.body_text(rev.body)
        if rev and (sig.status != Status.INVALID or isinstance(rev.body, str))
        else "",
    }
    error: dict[str, Any] | None = None
    if request.method == "POST":
        form.update({k: request.POST.get(k, form[k]) for k in form if k != "kind"})
        try:
            family = _family_choice(form["family"])
            if family is None:
                raise ApplicationError("Choose a family.")
            services.signature_update(
                signature=sig,
                actor=_user(request),
                body=_parse_body(sig.kind, form["body"]),
                family=family,
                severity=form["severity"] or None,
                tags=_tags(form["tags"]),
                description=form["description"],
                reason=request.POST.get("reason", ""),
            )
        except ApplicationError as exc:
            error = {"message": exc.message, "extra": exc.extra}
        else:
            messages.success(request, f"Saved {sig.name}.")
            return redirect("threats:signature-detail", pk=sig.pk)
    return render(
        request,
        "threats/signature_editor.html",
        _editor_context(request, form=form, error=error, signature=sig),
        status=400 if error else 200,
    )


@permission_required("threats.view_signature", raise_exception=True)
@require_POST
def signature_validate_view(request: HttpRequest) -> HttpResponse:
    """The editor's live check (htmx): a fragment with the errors at their lines."""
    kind = request.POST.get("kind", "")
    text = request.POST.get("body", "")
    errors: list[Issue]
    warnings: list[Issue] = []
    if not text.strip():
        return render(request, "threats/_validation.html", {"empty": True})
    try:
        result = services.body_validate(kind=kind, body=_parse_body(kind, text))
        errors, warnings = list(result.errors), list(result.warnings)
    except ApplicationError as exc:
        errors = [Issue(exc.message)]
    lines = text.splitlines()
    marked = []
    for issue in errors:
        context = ""
        if issue.line is not None and 1 <= issue.line <= len(lines):
            context = lines[issue.line - 1]
        marked.append({"issue": issue, "context": context})
    return render(
        request,
        "threats/_validation.html",
        {"errors": marked, "warnings": warnings, "valid": not errors},
    )


# --- import ----------------------------------------------------------------------------------
@permission_required("threats.import_signature", raise_exception=True)
def signature_import_view(request: HttpRequest) -> HttpResponse:
    summary = None
    error = None
    if request.method == "POST":
        files = [(f.name or "upload", f) for f in request.FILES.getlist("files")]
        try:
            summary = services.signatures_import_uploads(actor=_user(request), files=files)
        except ApplicationError as exc:
            error = exc.message
    return render(
        request,
        "threats/signature_import.html",
        {
            "summary": summary.as_dict() if summary else None,
            "error": error,
            "max_mb": services.MAX_IMPORT_FILE_BYTES // (1024 * 1024),
            "max_files": services.MAX_IMPORT_FILES,
        },
        status=400 if error else 200,
    )


# --- families --------------------------------------------------------------------------------
@permission_required("threats.view_family", raise_exception=True)
def family_list_view(request: HttpRequest) -> HttpResponse:
    error = None
    if request.method == "POST":
        if not request.user.has_perm("threats.add_family"):
            return render(request, "403.html", status=403)
        try:
            family = services.family_create(
                actor=_user(request),
                name=request.POST.get("name", "").strip(),
                category=request.POST.get("category", ""),
                severity=request.POST.get("severity", ""),
                description=request.POST.get("description", ""),
                aliases=_tags(request.POST.get("aliases", "")),
            )
        except ApplicationError as exc:
            error = exc.message
        except ValidationError as exc:  # full_clean's verdict: show it, never a 500
            error = "; ".join(exc.messages)
        else:
            messages.success(request, f"Created family {family.name}.")
            return redirect("threats:family-detail", pk=family.pk)
    return render(
        request,
        "threats/family_list.html",
        {
            "families": selectors.family_list(),
            "categories": Category.choices,
            "severities": Severity.choices,
            "error": error,
        },
        status=400 if error else 200,
    )


@permission_required("threats.view_family", raise_exception=True)
@require_GET
def family_detail_view(request: HttpRequest, pk: int) -> HttpResponse:
    family = _family(pk)
    filterset = selectors.signature_list(filters={"family": str(family.pk)})
    page = Paginator(filterset.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    counts = dict.fromkeys(Status.values, 0)
    for row in family.signatures.values("status").annotate(n=Count("id")).order_by():
        counts[row["status"]] = row["n"]
    return render(
        request,
        "threats/family_detail.html",
        {"family": family, "page": page, "query": f"family={family.pk}", "counts": counts},
    )

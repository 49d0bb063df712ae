"""Notifications: a bell in the portal and an e-mail, each delivered once.

Apps call ``notify`` (to people) or ``notify_role`` (to everyone holding a role) from their
services or tasks. ``key`` names what the notification is about; a person gets one
notification per key, so a task that is retried or redelivered never notifies twice, and the
e-mail goes only with the notification that was created. Mail uses Django's mail settings
(``EMAIL_BACKEND``: the console by default, SMTP in production).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.models import Notification, User

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sent:
    created: int  # notifications created now (the others existed: already delivered)
    mailed: int


def notify(
    *,
    recipients: Iterable[User],
    kind: str,
    key: str,
    title: str,
    body: str = "",
    url: str = "",
    email: bool = True,
) -> Sent:
    created: list[User] = []
    for user in recipients:
        try:
            with transaction.atomic():
                _, new = Notification.objects.get_or_create(
                    recipient=user,
                    key=key[:200],
                    defaults={"kind": kind[:40], "title": title[:200], "body": body, "url": url},
                )
        except IntegrityError:  # a concurrent delivery of the same key won the race
            new = False
        if new:
            created.append(user)
    mailed = 0
    if email:
        link = f"{settings.PORTAL_BASE_URL.rstrip('/')}{url}" if url else ""
        text = "\n\n".join(part for part in (body, link) if part)
        for user in created:
            if not user.email:
                continue
            try:
                mailed += send_mail(title, text, None, [user.email], fail_silently=False)
            except Exception:  # mail is best effort: the bell has it already
                logger.exception("could not e-mail notification %s to %s", key, user.username)
    return Sent(created=len(created), mailed=mailed)


def notify_role(
    role: str, *, kind: str, key: str, title: str, body: str = "", url: str = ""
) -> Sent:
    """Notify every active person holding ``role`` (a group of ``portal.roles``)."""
    people = User.objects.filter(is_active=True, groups__name=role).distinct()
    return notify(recipients=people, kind=kind, key=key, title=title, body=body, url=url)


def unread_count(user: User) -> int:
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()


def notifications_for(user: User, *, limit: int = 100) -> list[Notification]:
    return list(Notification.objects.filter(recipient=user)[:limit])


def notifications_mark_read(*, user: User, ids: Iterable[int] | None = None) -> int:
    """Mark the user's notifications read (all unread ones when ``ids`` is None)."""
    unread = Notification.objects.filter(recipient=user, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=list(ids))
    return unread.update(read_at=timezone.now())

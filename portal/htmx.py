from django.http import HttpRequest


def is_htmx(request: HttpRequest) -> bool:
    """True for a request htmx sent (django-htmx sets ``request.htmx``; typed here once)."""
    return bool(getattr(request, "htmx", False))

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_application = get_wsgi_application()

# the phones' compatibility update check is answered in front of Django when it can be
# (releases/update_check.py); every other request goes straight to Django
from releases.update_check import UpdateCheckFastPath  # noqa: E402

application = UpdateCheckFastPath(django_application)

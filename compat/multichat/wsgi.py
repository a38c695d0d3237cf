"""WSGI entry point (HTTP only: the admin, login and logout)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "multichat.settings")

application = get_wsgi_application()

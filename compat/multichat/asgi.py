"""ASGI entry point: Django for HTTP, the chat consumer for WebSocket (spec §4.1).

Like the original there is no AllowedHostsOriginValidator: foreign Origin and
Host headers are accepted on the WebSocket.

Run: ``daphne multichat.asgi:application`` (cwd ``compat/``).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "multichat.settings")

# Set up Django (apps, settings) before importing anything that touches models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)

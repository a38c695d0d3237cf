"""WebSocket URL routes (spec §4.1): exactly ``/chat/stream/``, query string ignored.

``CHAT_CONSUMER`` picks the behaviour: ``multichat`` (the original, default) or ``fork`` (the
Whisper fork's, with ``room_users`` and room presence in the Django cache).
"""

from django.conf import settings
from django.urls import path

from .consumers import ChatConsumer
from .fork_consumer import ForkChatConsumer

CONSUMERS = {"multichat": ChatConsumer, "fork": ForkChatConsumer}

websocket_urlpatterns = [
    path("chat/stream/", CONSUMERS[settings.CHAT_CONSUMER].as_asgi()),
]

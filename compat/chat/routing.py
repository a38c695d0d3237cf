"""WebSocket URL routes (spec §4.1): exactly ``/chat/stream/``, query string ignored."""

from django.urls import path

from .consumers import ChatConsumer

websocket_urlpatterns = [
    path("chat/stream/", ChatConsumer.as_asgi()),
]

"""The multichat WebSocket consumer, rewritten for the interop suite (spec
`multichat-protocol.md` §4).

This module is the *oracle* Whisper is compared against byte for byte
(`tests/interop_protocol.rs`), so it keeps every observable behaviour of the
original Channels 2 `ChatConsumer`, quirks included:

* anonymous sockets are closed before `accept()` (daphne answers HTTP 403);
* `self.rooms` is a set of the *raw* JSON values used in successful joins,
  under Python equality (``1 == 1.0 == True``, ``1 != "1"``);
* the room lookup hands the raw value to ``Room.objects.get(pk=...)`` so Django
  itself applies ``int()``; whatever raises there (``"abc"``, ``[1]``, ``NaN``)
  is left uncaught and kills the socket with close code 1011;
* join publishes its enter notice *before* subscribing, leave publishes its
  leave notice *before* unsubscribing;
* ``send`` checks membership before touching the database;
* unknown or missing commands are ignored without a reply.
"""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from .models import Room

MSG_TYPE_MESSAGE = 0
MSG_TYPE_ENTER = 4
MSG_TYPE_LEAVE = 5


def _notify():
    return getattr(settings, "NOTIFY_USERS_ON_ENTER_OR_LEAVE_ROOMS", True)


class ClientError(Exception):
    """A problem reported to the client as ``{"error": code}``."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


def _group(room):
    return "room-%s" % room.id


@database_sync_to_async
def room_or_error(raw_room, user):
    """Spec §4.5: login check, pk lookup with the raw value, staff check."""
    if not user.is_authenticated:
        raise ClientError("USER_HAS_TO_LOGIN")
    try:
        # The raw JSON value goes straight to Django: IntegerField.get_prep_value
        # applies int() and raises (uncaught, on purpose) where Python does.
        room = Room.objects.get(pk=raw_room)
    except Room.DoesNotExist:
        raise ClientError("ROOM_INVALID")
    if room.staff_only and not user.is_staff:
        raise ClientError("ROOM_ACCESS_DENIED")
    return room


class ChatConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        self.rooms = set()
        user = self.scope.get("user")
        if user is None or user.is_anonymous:
            # Refuse before accepting: daphne answers the handshake with 403.
            await self.close()
            return
        await self.accept()

    async def receive_json(self, content, **kwargs):
        # content.get raises AttributeError for a non-object: a crash, as in the original.
        command = content.get("command", None)
        try:
            if command == "join":
                await self.join_room(content["room"])
            elif command == "leave":
                await self.leave_room(content["room"])
            elif command == "send":
                room, message = content["room"], content["message"]
                await self.send_room(room, message)
            # Anything else: ignored, no reply.
        except ClientError as err:
            await self.send_json({"error": err.code})

    async def disconnect(self, code):
        for raw_room in list(getattr(self, "rooms", ())):
            try:
                await self.leave_room(raw_room)
            except ClientError:
                pass

    async def join_room(self, raw_room):
        room = await room_or_error(raw_room, self.scope["user"])
        if _notify():
            await self.channel_layer.group_send(
                _group(room),
                {
                    "type": "chat.join",
                    "room_id": raw_room,
                    "username": self.scope["user"].username,
                },
            )
        self.rooms.add(raw_room)
        await self.channel_layer.group_add(_group(room), self.channel_name)
        await self.send_json({"join": str(room.id), "title": room.title})

    async def leave_room(self, raw_room):
        room = await room_or_error(raw_room, self.scope["user"])
        if _notify():
            await self.channel_layer.group_send(
                _group(room),
                {
                    "type": "chat.leave",
                    "room_id": raw_room,
                    "username": self.scope["user"].username,
                },
            )
        self.rooms.discard(raw_room)
        await self.channel_layer.group_discard(_group(room), self.channel_name)
        await self.send_json({"leave": str(room.id)})

    async def send_room(self, raw_room, message):
        if raw_room not in self.rooms:
            raise ClientError("ROOM_ACCESS_DENIED")
        room = await room_or_error(raw_room, self.scope["user"])
        await self.channel_layer.group_send(
            _group(room),
            {
                "type": "chat.message",
                "room_id": raw_room,
                "username": self.scope["user"].username,
                "message": message,
            },
        )

    # Group event handlers ("chat.join" -> chat_join, ...).

    async def chat_join(self, event):
        await self.send_json(
            {
                "msg_type": MSG_TYPE_ENTER,
                "room": event["room_id"],
                "username": event["username"],
            }
        )

    async def chat_leave(self, event):
        await self.send_json(
            {
                "msg_type": MSG_TYPE_LEAVE,
                "room": event["room_id"],
                "username": event["username"],
            }
        )

    async def chat_message(self, event):
        await self.send_json(
            {
                "msg_type": MSG_TYPE_MESSAGE,
                "room": event["room_id"],
                "username": event["username"],
                "message": event["message"],
            }
        )

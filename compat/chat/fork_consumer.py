"""The Whisper fork's consumer (SavandBros/whisper HEAD, spec `multichat-protocol.md` §12),
rewritten for the interop suite: the multichat consumer of ``consumers.py`` plus the fork's
``room_users`` command and its room presence in the Django cache.

Selected with ``CHAT_CONSUMER=fork`` (``multichat/settings.py``). Behaviour kept from the fork,
quirks included, because this worker is the oracle a Whisper process is compared with:

* presence lives under the cache key ``room-presence-<room>`` (``str()`` of the raw room value
  the client sent) as a dict ``{user.id: {"username", "name", "left", "last_update"}}``, written
  with ``timeout=ROOM_PRESENCE_TIMEOUT``;
* it is refreshed after a join (before the ack) and after every send, and the user's entry is
  marked ``left`` on leave (also for each room left at disconnect);
* ``room_users`` has no membership or permission check and answers
  ``{"type": 6, "room": <raw>, "data": {"users": <the cached dict or None>}}``;
* leaving a room whose presence dict exists but lacks the user raises ``KeyError`` (the socket
  dies with 1011), and leaving with no presence dict writes ``None`` under the key — both as in
  the fork; Whisper's README lists what Whisper does instead.
"""

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from .consumers import ChatConsumer, room_or_error
from .consumers import _group as group
from .consumers import _notify as notify

MSG_TYPE_INTERNAL = 6


def presence_key(raw_room):
    return f"room-presence-{raw_room}"


@database_sync_to_async
def refresh_presence(raw_room, user):
    key = presence_key(raw_room)
    cached = cache.get(key)
    entry = {
        user.id: {
            "username": user.username,
            "name": getattr(user, "name", ""),
            "left": False,
            "last_update": timezone.now().timestamp(),
        }
    }
    if not cached:
        cache.set(key, entry, timeout=settings.ROOM_PRESENCE_TIMEOUT)
    else:
        cached.update(entry)
        cache.set(key, cached, timeout=settings.ROOM_PRESENCE_TIMEOUT)


@database_sync_to_async
def mark_left(raw_room, user_id):
    key = presence_key(raw_room)
    cached = cache.get(key)
    if cached:
        cached[user_id].update({"left": True})  # KeyError when the user is not there (fork)
    cache.set(key, cached, timeout=settings.ROOM_PRESENCE_TIMEOUT)


@database_sync_to_async
def presence_users(raw_room):
    return cache.get(presence_key(raw_room))


class ForkChatConsumer(ChatConsumer):
    async def receive_json(self, content, **kwargs):
        if content.get("command", None) == "room_users":
            # content["room"] raises KeyError when missing: a crash, as in the fork.
            raw_room = content["room"]
            await self.send_json(
                {
                    "type": MSG_TYPE_INTERNAL,
                    "room": raw_room,
                    "data": {"users": await presence_users(raw_room)},
                }
            )
            return
        await super().receive_json(content, **kwargs)

    # join and leave in the fork's order: notice, rooms set, presence, group, ack.

    async def join_room(self, raw_room):
        user = self.scope["user"]
        room = await room_or_error(raw_room, user)
        if notify():
            await self.channel_layer.group_send(
                group(room),
                {"type": "chat.join", "room_id": raw_room, "username": user.username},
            )
        self.rooms.add(raw_room)
        await refresh_presence(raw_room, user)
        await self.channel_layer.group_add(group(room), self.channel_name)
        await self.send_json({"join": str(room.id), "title": room.title})

    async def leave_room(self, raw_room):
        user = self.scope["user"]
        room = await room_or_error(raw_room, user)
        if notify():
            await self.channel_layer.group_send(
                group(room),
                {"type": "chat.leave", "room_id": raw_room, "username": user.username},
            )
        self.rooms.discard(raw_room)
        await mark_left(raw_room, user.id)
        await self.channel_layer.group_discard(group(room), self.channel_name)
        await self.send_json({"leave": str(room.id)})

    async def send_room(self, raw_room, message):
        await super().send_room(raw_room, message)
        await refresh_presence(raw_room, self.scope["user"])

"""Talks to the channel layer configured in settings (``CHANNEL_LAYERS``), the way a user's
Django code does: a bot, a management command or a Celery task. Used by Whisper's
channel-layer interop tests (``tests/channel_layers``).

    python layer_tool.py send GROUP EVENT_JSON [EVENT_JSON ...]
        ``group_send(GROUP, event)`` for each event, in order, then prints ``sent N``.

    python layer_tool.py listen GROUP COUNT TIMEOUT
        A channel of its own joins GROUP (``group_add``), prints ``ready``, then prints each
        event it receives as one JSON line (``__asgi_channel__`` removed by the layer, bytes
        values shown as ``{"__bytes__": len}``), until COUNT events or TIMEOUT seconds; then
        ``done N`` and ``group_discard``.

Run from ``compat/`` with the venv's python; settings come from the environment like the rest
of the project.
"""

import asyncio
import json
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "multichat.settings")
django.setup()

from channels.layers import get_channel_layer  # noqa: E402


def _jsonable(value):
    if isinstance(value, bytes):
        return {"__bytes__": len(value)}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


async def send(group, events):
    layer = get_channel_layer()
    for raw in events:
        await layer.group_send(group, json.loads(raw))
    print("sent %d" % len(events), flush=True)


async def listen(group, count, timeout):
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group, channel)
    print("ready", flush=True)
    received = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while received < count:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                message = await asyncio.wait_for(layer.receive(channel), left)
            except asyncio.TimeoutError:
                break
            print(json.dumps(_jsonable(message)), flush=True)
            received += 1
    finally:
        await layer.group_discard(group, channel)
    print("done %d" % received, flush=True)


def main(argv):
    if len(argv) >= 3 and argv[1] == "send":
        asyncio.run(send(argv[2], argv[3:]))
    elif len(argv) == 5 and argv[1] == "listen":
        asyncio.run(listen(argv[2], int(argv[3]), float(argv[4])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

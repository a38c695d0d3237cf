"""Golden vectors for byte-exact outbound frames and Python int() room-id parsing, made by
CPython's own json and int() (`json-golden.json`).

Each `message_echo` case: the client's frame text (a `send` command whose `message` is the given
JSON text) and the exact bytes the original server emits for the chat event, given username "u"
and the raw room value "1". Each `room_id` case: the raw JSON room value and what Django's integer
lookup does with it (int() semantics): an integer, or "error" where the original raises (crash).
`strict_json` is false where the original emits text that is not strict JSON (Infinity): a
client's JSON.parse rejects it, so the project answers such input with its documented
BAD_REQUEST instead."""
import json
import sys

MESSAGES = [
    '"plain"', '""', '"quote \\" backslash \\\\ slash /"', '"tab\\tnl\\ncr\\rbs\\bff\\f"', '"\\u0001\\u001f\\u007f"',
    '"é ☃ Ä"', '"😀"', '"\\ud83d\\ude00"', '"\\ud800"', '"\\u2028\\u2029"', '"<script>&\'"',
    '0', '-0', '7', '-12', '12345678901234567890123456789', '-99999999999999999999999',
    '1.0', '1.5', '2.50', '1E2', '1e2', '3e0', '1e-7', '1.5e300', '1e400', '-1e400', '-1e-400', '0.1',
    '100000000000000000.0', '1e16', '1e15', '123456789.123456789', '5e-324', '1.7976931348623157e308',
    '0.0001', '0.00001', 'true', 'false', 'null', '[]', '{}', '[1, 2.5, null, true]', '{"b": 1, "a": 2}',
    '{"a": 1, "a": 2, "b": 3}', '{"nested": {"deep": [{"x": "é"}]}}', '[[[]]]', '{"": ""}',
]
ROOMS = [1, 0, -1, 2**63, 10**30, 1.5, 1.9, -1.5, True, False, None, "1", "01", " 1 ", "+1", "-1", "1_0",
         "1__0", "_1", "0x1", "1.0", "1e2", "", " ", "abc", "١", "\u0661\u0662", "1\n", "\t2\t", "٣"]


def room_result(value):
    if value is None:
        return "no row (ROOM_INVALID)"
    try:
        return int(value)
    except (ValueError, TypeError, OverflowError):
        return "error"


def reject_constant(name):
    raise ValueError(name)


def golden():
    out = {"note": __doc__, "message_echo": [], "room_id": []}
    for text in MESSAGES:
        frame = '{"command": "send", "room": "1", "message": %s}' % text
        value = json.loads(frame)["message"]
        emitted = json.dumps({"msg_type": 0, "room": "1", "username": "u", "message": value})
        try:
            json.loads(emitted, parse_constant=reject_constant)
            strict = True
        except ValueError:
            strict = False
        out["message_echo"].append({"client_frame": frame, "server_frame": emitted, "strict_json": strict})
    for value in ROOMS:
        out["room_id"].append({"room_json": json.dumps(value), "lookup": room_result(value),
                               "echoed_room_field": json.dumps({"room": value})[9:-1]})
    return out


if __name__ == "__main__":
    json.dump(golden(), sys.stdout, indent=1, ensure_ascii=True)

/*
 * MultiChat client — dependency-free, no build step.
 *
 * Speaks the multichat WebSocket protocol on ws(s)://<host>/chat/stream/:
 *   -> {"command": "join"|"leave", "room": "<id>"}
 *   -> {"command": "send", "room": "<id>", "message": "<text>"}
 *   <- {"join": "<id>", "title": "<title>"}   <- {"leave": "<id>"}   <- {"error": "<CODE>"}
 *   <- {"msg_type": 0..5, "room": <R>, "username": "<name>"[, "message": <any>]}
 *
 * Every user-supplied string is inserted as text, never as HTML. The socket reconnects with
 * back-off and re-joins the rooms whose boxes are open; errors show as dismissable banners.
 */
(function () {
    'use strict';

    const SOCKET_PATH = '/chat/stream/';
    const LOGIN_URL = '/accounts/login/';

    const RECONNECT_FIRST_MS = 1000;
    const RECONNECT_FACTOR = 1.5;
    const RECONNECT_MAX_MS = 30000;
    const RECONNECT_JITTER = 0.2; // +/- 10 %

    /** Close codes that mean "you are not (or no longer) allowed in". */
    const SESSION_CLOSE_CODES = new Set([1008, 4401, 4403]);
    /** This many closes in a row without ever opening trigger a session check. */
    const EARLY_CLOSES_BEFORE_CHECK = 2;
    const MAX_BANNERS = 5;

    const MSG_CHAT = 0;
    const MSG_WARNING = 1;
    const MSG_ALERT = 2;
    const MSG_MUTED = 3;
    const MSG_ENTER = 4;
    const MSG_LEAVE = 5;

    const ERROR_TEXT = {
        ROOM_INVALID: 'That room does not exist (any more).',
        ROOM_ACCESS_DENIED: 'You are not allowed in that room.',
        USER_HAS_TO_LOGIN: 'You have to log in to chat.',
        BAD_REQUEST: 'The server did not understand the request.',
        UNKNOWN_COMMAND: 'The server does not know that command.',
    };

    const hasOwn = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);

    // ---------------------------------------------------------------- state

    let chats = null; // #chats
    let statusLine = null; // #status
    let banners = null; // #errors

    let socket = null;
    let everOpened = false; // has any socket of this page opened yet?
    let attempt = 0; // reconnect attempts since the last successful open
    let earlyCloses = 0; // consecutive closes without an open
    let reconnectTimer = 0;
    let sessionEnded = false;

    /**
     * Commands that always get exactly one direct reply (join/leave), oldest first, so that an
     * {"error": ...} can be matched to the command it refuses. A failing `send` also replies
     * with an error, but successful sends are silent; errors are therefore attributed to the
     * oldest pending join/leave when there is one. Acks are authoritative either way.
     */
    let pending = [];

    // ---------------------------------------------------------------- DOM helpers

    function el(tag, className, text) {
        const node = document.createElement(tag);
        if (className) {
            node.className = className;
        }
        if (text !== undefined) {
            node.textContent = text;
        }
        return node;
    }

    /** A message value as display text: strings as they are, anything else as JSON. */
    function messageText(message) {
        if (typeof message === 'string') {
            return message;
        }
        const json = JSON.stringify(message);
        return json === undefined ? '' : json;
    }

    function roomBox(id) {
        return document.getElementById('room-' + id);
    }

    function pillFor(id) {
        for (const pill of document.querySelectorAll('li.room-link')) {
            if (pill.dataset.roomId === id) {
                return pill;
            }
        }
        return null;
    }

    function setPillJoined(id, joined) {
        const pill = pillFor(id);
        if (pill) {
            pill.classList.toggle('joined', joined);
            pill.setAttribute('aria-pressed', joined ? 'true' : 'false');
        }
    }

    function isOpen() {
        return socket !== null && socket.readyState === WebSocket.OPEN;
    }

    // ---------------------------------------------------------------- status + banners

    function setStatus(text, ended) {
        statusLine.replaceChildren();
        statusLine.classList.toggle('status-ended', Boolean(ended));
        if (text) {
            statusLine.textContent = text;
            statusLine.hidden = false;
        } else {
            statusLine.hidden = true;
        }
    }

    function showError(code) {
        const key = String(code);
        const text = hasOwn(ERROR_TEXT, key) ? ERROR_TEXT[key] : key;
        const banner = el('div', 'error');
        banner.setAttribute('role', 'alert');
        banner.dataset.code = key;
        banner.append(el('span', 'error-text', text));
        const dismiss = el('button', 'dismiss', '\u00d7');
        dismiss.type = 'button';
        dismiss.title = 'Dismiss';
        dismiss.setAttribute('aria-label', 'Dismiss');
        dismiss.addEventListener('click', () => banner.remove());
        banner.append(dismiss);
        banners.append(banner);
        while (banners.children.length > MAX_BANNERS) {
            banners.firstElementChild.remove();
        }
    }

    function setSendEnabled(enabled) {
        for (const button of chats.querySelectorAll('.room form button')) {
            button.disabled = !enabled;
        }
    }

    // ---------------------------------------------------------------- rooms

    function appendLine(box, line) {
        const messages = box.querySelector('.messages');
        if (!messages) {
            return;
        }
        messages.append(line);
        messages.scrollTop = messages.scrollHeight;
    }

    function createRoomBox(id, title) {
        const box = el('div', 'room');
        box.id = 'room-' + id;
        box.dataset.roomId = id;

        const heading = el('h2', '', title === undefined || title === null ? id : String(title));
        const messages = el('div', 'messages');
        messages.setAttribute('role', 'log');
        messages.setAttribute('aria-live', 'polite');

        const form = el('form');
        const input = el('input');
        input.type = 'text';
        input.name = 'message';
        input.autocomplete = 'off';
        input.setAttribute('aria-label', 'Message to ' + heading.textContent);
        const button = el('button', '', 'Send');
        button.type = 'submit';
        button.disabled = !isOpen();
        form.append(input, button);
        form.addEventListener('submit', (event) => {
            event.preventDefault();
            if (!isOpen()) {
                return; // never queue while disconnected
            }
            send({ command: 'send', room: id, message: input.value });
            input.value = '';
            input.focus();
        });

        box.append(heading, messages, form);
        chats.append(box);
        return box;
    }

    function removeRoom(id) {
        const box = roomBox(id);
        if (box) {
            box.remove();
        }
        setPillJoined(id, false);
    }

    function takePending(type, room) {
        const index = pending.findIndex((cmd) => cmd.type === type && cmd.room === room);
        if (index >= 0) {
            pending.splice(index, 1);
        }
    }

    function isPending(room) {
        return pending.some((cmd) => cmd.room === room);
    }

    function joinRoom(id) {
        if (send({ command: 'join', room: id })) {
            pending.push({ type: 'join', room: id });
            return true;
        }
        return false;
    }

    function onPillActivated(pill) {
        const id = pill.dataset.roomId;
        if (id === undefined || sessionEnded) {
            return;
        }
        if (!isOpen()) {
            if (roomBox(id)) {
                // The server forgets our rooms when the socket drops; closing the box locally
                // is all that is needed (it will not be re-joined).
                removeRoom(id);
            } else if (statusLine.hidden) {
                setStatus('Not connected yet \u2014 please try again in a moment.');
            }
            return;
        }
        if (isPending(id)) {
            return; // a join/leave for this room is still in flight
        }
        if (roomBox(id)) {
            setPillJoined(id, false);
            if (send({ command: 'leave', room: id })) {
                pending.push({ type: 'leave', room: id });
            }
        } else {
            setPillJoined(id, true);
            if (!joinRoom(id)) {
                setPillJoined(id, false);
            }
        }
    }

    // ---------------------------------------------------------------- incoming frames

    function handleError(code) {
        const index = pending.findIndex((cmd) => cmd.type === 'join' || cmd.type === 'leave');
        if (index >= 0) {
            const cmd = pending.splice(index, 1)[0];
            // A refused join (first join or a re-join after reconnecting) and a refused leave
            // both leave us outside the room: drop the box and un-highlight the pill.
            removeRoom(cmd.room);
        }
        showError(code);
    }

    function handleJoin(data) {
        const id = String(data.join);
        takePending('join', id);
        setPillJoined(id, true);
        if (roomBox(id)) {
            return; // duplicate ack (re-join, or a second click): keep the existing box
        }
        console.debug('Joining room ' + id);
        createRoomBox(id, data.title);
    }

    function handleLeave(data) {
        const id = String(data.leave);
        takePending('leave', id);
        console.debug('Leaving room ' + id);
        removeRoom(id);
    }

    function handleEvent(data) {
        const box = roomBox(String(data.room));
        if (!box) {
            return; // e.g. our own leave notice after the box is gone
        }
        const username = data.username === undefined ? '' : String(data.username);
        let line;
        switch (data.msg_type) {
            case MSG_CHAT:
                line = el('div', 'message');
                line.append(
                    el('span', 'username', username),
                    el('span', 'body', messageText(data.message)),
                );
                break;
            case MSG_WARNING:
                line = el('div', 'contextual-message text-warning', messageText(data.message));
                break;
            case MSG_ALERT:
                line = el('div', 'contextual-message text-danger', messageText(data.message));
                break;
            case MSG_MUTED:
                line = el('div', 'contextual-message text-muted', messageText(data.message));
                break;
            case MSG_ENTER:
                line = el('div', 'contextual-message text-muted', username + ' joined the room!');
                break;
            case MSG_LEAVE:
                line = el('div', 'contextual-message text-muted', username + ' left the room!');
                break;
            default:
                console.warn('Unsupported message type!', data);
                return;
        }
        appendLine(box, line);
    }

    /**
     * JSON.parse, falling back for Python's bare NaN / Infinity / -Infinity (the server relays
     * such client-supplied numbers as they are): outside string literals they become strings.
     */
    function parseFrame(raw) {
        try {
            return JSON.parse(raw);
        } catch (err) {
            const patched = raw.replace(/"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g, (token) =>
                token.charAt(0) === '"' ? token : '"' + token + '"',
            );
            return JSON.parse(patched); // throws again when it really is not JSON
        }
    }

    function handleFrame(raw) {
        let data;
        try {
            data = parseFrame(raw);
        } catch (err) {
            console.warn('Cannot parse websocket message', raw, err);
            return;
        }
        console.debug('Got websocket message', raw);
        if (data === null || typeof data !== 'object' || Array.isArray(data)) {
            console.warn('Cannot handle message!', data);
        } else if (hasOwn(data, 'error')) {
            handleError(data.error);
        } else if (hasOwn(data, 'join')) {
            handleJoin(data);
        } else if (hasOwn(data, 'leave')) {
            handleLeave(data);
        } else if (hasOwn(data, 'msg_type')) {
            handleEvent(data);
        } else {
            console.warn('Cannot handle message!', data);
        }
    }

    // ---------------------------------------------------------------- connection

    function socketUrl() {
        const scheme = window.location.protocol === 'https:' ? 'wss' : 'ws';
        return scheme + '://' + window.location.host + SOCKET_PATH;
    }

    function send(payload) {
        if (!isOpen()) {
            return false;
        }
        socket.send(JSON.stringify(payload));
        return true;
    }

    function reconnectDelay() {
        const base = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * Math.pow(RECONNECT_FACTOR, attempt));
        const jitter = 1 + (Math.random() - 0.5) * RECONNECT_JITTER;
        return Math.round(Math.min(RECONNECT_MAX_MS, base * jitter));
    }

    function scheduleReconnect() {
        if (sessionEnded || reconnectTimer) {
            return;
        }
        const delay = reconnectDelay();
        attempt += 1;
        reconnectTimer = window.setTimeout(() => {
            reconnectTimer = 0;
            connect();
        }, delay);
    }

    function markDisconnectedInRooms() {
        for (const box of chats.querySelectorAll('.room')) {
            appendLine(box, el('div', 'contextual-message text-muted', 'Connection lost.'));
        }
    }

    function endSession() {
        if (sessionEnded) {
            return;
        }
        sessionEnded = true;
        window.clearTimeout(reconnectTimer);
        reconnectTimer = 0;
        pending = [];
        setSendEnabled(false);
        if (socket) {
            const old = socket;
            socket = null;
            old.close();
        }
        setStatus('', true);
        const next = window.location.pathname + window.location.search;
        const link = el('a', '', 'log in again');
        link.href = LOGIN_URL + '?next=' + encodeURIComponent(next);
        statusLine.append('Your session has ended \u2014 ', link, '.');
        statusLine.hidden = false;
    }

    /**
     * Browsers hide the HTTP status of a refused handshake, so a 403 (session gone) looks like
     * a server that is down. After repeated closes-before-open, ask the page itself: a redirect
     * (to the login page) or 401/403 means the session ended; a network error means the server
     * is away, so keep reconnecting.
     */
    function checkSession() {
        if (typeof window.fetch !== 'function') {
            endSession();
            return;
        }
        window
            .fetch(window.location.href, {
                credentials: 'same-origin',
                redirect: 'manual',
                cache: 'no-store',
                headers: { Accept: 'text/html' },
            })
            .then((response) => {
                if (
                    response.type === 'opaqueredirect' ||
                    response.status === 401 ||
                    response.status === 403
                ) {
                    endSession();
                }
            })
            .catch(() => {
                /* unreachable server: the reconnect loop carries on */
            });
    }

    function connect() {
        if (sessionEnded) {
            return;
        }
        const url = socketUrl();
        console.debug('Connecting to ' + url);
        let ws;
        try {
            ws = new WebSocket(url);
        } catch (err) {
            console.warn('Cannot open websocket', err);
            scheduleReconnect();
            return;
        }
        socket = ws;
        let opened = false;

        ws.addEventListener('open', () => {
            if (ws !== socket) {
                return;
            }
            opened = true;
            console.debug('Connected to chat socket');
            const reconnected = everOpened;
            everOpened = true;
            attempt = 0;
            earlyCloses = 0;
            pending = [];
            setStatus('');
            setSendEnabled(true);
            if (reconnected) {
                // The server forgot our rooms with the old socket: join every open box again.
                for (const box of chats.querySelectorAll('.room')) {
                    joinRoom(box.dataset.roomId);
                }
            }
        });

        ws.addEventListener('message', (event) => {
            if (ws !== socket) {
                return;
            }
            if (typeof event.data !== 'string') {
                console.warn('Ignoring binary websocket message');
                return;
            }
            handleFrame(event.data);
        });

        ws.addEventListener('close', (event) => {
            if (ws !== socket) {
                return;
            }
            socket = null;
            console.debug('Disconnected from chat socket', event.code, event.reason);
            pending = [];
            setSendEnabled(false);
            if (opened) {
                markDisconnectedInRooms();
            }
            if (SESSION_CLOSE_CODES.has(event.code)) {
                endSession();
                return;
            }
            if (opened) {
                earlyCloses = 0;
            } else {
                earlyCloses += 1;
                if (earlyCloses >= EARLY_CLOSES_BEFORE_CHECK) {
                    checkSession();
                }
            }
            setStatus(everOpened ? 'Connection lost. Reconnecting\u2026' : 'Connecting\u2026');
            scheduleReconnect();
        });
    }

    // ---------------------------------------------------------------- start-up

    function ensureBefore(anchor, id, className, extra) {
        let node = document.getElementById(id);
        if (!node) {
            node = el('div', className);
            node.id = id;
            if (extra) {
                extra(node);
            }
            anchor.parentNode.insertBefore(node, anchor);
        }
        return node;
    }

    function start() {
        chats = document.getElementById('chats');
        if (!chats) {
            return; // not the chat page
        }
        statusLine = ensureBefore(chats, 'status', 'status', (node) => {
            node.setAttribute('role', 'status');
            node.setAttribute('aria-live', 'polite');
            node.hidden = true;
        });
        banners = ensureBefore(chats, 'errors', 'errors');

        for (const pill of document.querySelectorAll('li.room-link')) {
            pill.tabIndex = 0;
            pill.setAttribute('role', 'button');
            pill.setAttribute('aria-pressed', pill.classList.contains('joined') ? 'true' : 'false');
            pill.addEventListener('click', () => onPillActivated(pill));
            pill.addEventListener('keydown', (event) => {
                if (event.key === 'Enter' || event.key === ' ') {
                    event.preventDefault();
                    onPillActivated(pill);
                }
            });
        }

        // Coming back online: retry now instead of waiting out the back-off.
        window.addEventListener('online', () => {
            if (!sessionEnded && socket === null && reconnectTimer) {
                window.clearTimeout(reconnectTimer);
                reconnectTimer = 0;
                connect();
            }
        });

        connect();
    }

    if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', start);
    } else {
        start();
    }
})();

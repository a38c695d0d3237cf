// Real-browser end-to-end test: two users in two browser contexts chat live through the real
// pages (login, room list, logout) and the real static/js/chat.js.
//
// Usage:
//   node chat.mjs BASE_URL USER_A PASS_A USER_B PASS_B ROOM_ID STAFF_ROOM_ID
// Every argument may instead come from the environment: E2E_BASE_URL, E2E_USER_A, E2E_PASS_A,
// E2E_USER_B, E2E_PASS_B, E2E_ROOM, E2E_STAFF_ROOM. User A must be staff, user B must not;
// STAFF_ROOM_ID is a staff-only room. CHROMIUM_PATH overrides /usr/bin/chromium; screenshots go
// to E2E_ARTIFACTS (tests/browser.rs: target/browser-artifacts/chat/).
//
// Exits 0 when every check passed, 1 (with the failing step) otherwise.

import path from 'node:path';
import {
    TIMEOUT_MS,
    artifactsDir,
    assert,
    incidents,
    launchChromium,
    observedPage,
    step,
    stepCount,
    waitFor,
    waitUntil,
    watchdog,
} from './harness.mjs';

const WATCHDOG_MS = 90_000; // the whole run

const [argBase, argUserA, argPassA, argUserB, argPassB, argRoom, argStaffRoom] = process.argv.slice(2);
const cfg = {
    base: (argBase || process.env.E2E_BASE_URL || '').replace(/\/+$/, ''),
    a: { name: argUserA || process.env.E2E_USER_A, password: argPassA || process.env.E2E_PASS_A },
    b: { name: argUserB || process.env.E2E_USER_B, password: argPassB || process.env.E2E_PASS_B },
    room: argRoom || process.env.E2E_ROOM,
    staffRoom: argStaffRoom || process.env.E2E_STAFF_ROOM,
};
for (const [what, value] of [
    ['BASE_URL', cfg.base],
    ['USER_A', cfg.a.name],
    ['PASS_A', cfg.a.password],
    ['USER_B', cfg.b.name],
    ['PASS_B', cfg.b.password],
    ['ROOM_ID', cfg.room],
    ['STAFF_ROOM_ID', cfg.staffRoom],
]) {
    if (!value) {
        console.error(`e2e: missing ${what}\nusage: node chat.mjs BASE_URL USER_A PASS_A USER_B PASS_B ROOM_ID STAFF_ROOM_ID`);
        process.exit(2);
    }
}
const timer = watchdog(WATCHDOG_MS);
const artifacts = artifactsDir('chat');

/** The lines of a room box as text, for error messages. */
async function roomLines(page, room) {
    return page.evaluate((room) => {
        const box = document.getElementById('room-' + room);
        if (!box) {
            return '(no box #room-' + room + ')';
        }
        return JSON.stringify([...box.querySelectorAll('.messages > *')].map((n) => n.textContent));
    }, room);
}

async function waitForChat(page, who, room, username, body) {
    try {
        await waitUntil(
            page,
            `${who} to see ${username}: ${JSON.stringify(body)} in #room-${room}`,
            ([room, username, body]) =>
                [...document.querySelectorAll(`#room-${room} .messages .message`)].some(
                    (m) =>
                        m.querySelector('.username')?.textContent === username &&
                        m.querySelector('.body')?.textContent === body,
                ),
            [room, username, body],
        );
    } catch (err) {
        throw new Error(`${err.message}; lines: ${await roomLines(page, room)}`);
    }
}

async function waitForNotice(page, who, room, text) {
    try {
        await waitUntil(
            page,
            `${who} to see the notice ${JSON.stringify(text)} in #room-${room}`,
            ([room, text]) =>
                [...document.querySelectorAll(`#room-${room} .messages .contextual-message`)].some(
                    (m) => m.textContent === text,
                ),
            [room, text],
        );
    } catch (err) {
        throw new Error(`${err.message}; lines: ${await roomLines(page, room)}`);
    }
}

async function newUserPage(browser, label) {
    const { context, page } = await observedPage(browser, { viewport: { width: 1100, height: 800 } }, label);
    page.on('console', (msg) => {
        const url = msg.location() && msg.location().url;
        if (msg.type() === 'error' || msg.type() === 'warning') {
            const where = url ? ` (${url})` : '';
            console.log(`  [${label} console.${msg.type()}] ${msg.text()}${where}`);
        }
    });
    return { context, page, label };
}

async function login(who, user) {
    const { page } = who;
    const response = await page.goto(cfg.base + '/');
    assert(response && response.ok(), `GET / answered ${response && response.status()}`);
    const url = new URL(page.url());
    assert(
        url.pathname === '/accounts/login/' && url.searchParams.get('next') === '/',
        `expected a redirect to /accounts/login/?next=/, got ${page.url()}`,
    );
    assert((await page.title()) === 'Login', `login page title is ${JSON.stringify(await page.title())}`);
    await page.fill('#id_username', user.name);
    await page.fill('#id_password', user.password);
    await Promise.all([
        page.waitForURL(cfg.base + '/', { timeout: TIMEOUT_MS }),
        page.click('form.login button[type="submit"]'),
    ]);
    const logout = page.locator('header form.logout button');
    await waitFor(logout, 'the logout button in the header');
    const title = await logout.getAttribute('title');
    assert(title === `Logged in as ${user.name}`, `logout button title is ${JSON.stringify(title)}`);
    const pills = await page.locator('li.room-link').count();
    assert(pills >= 2, `expected the room pills on /, found ${pills}`);
    const cssRules = await page.evaluate(() =>
        [...document.styleSheets].reduce((n, sheet) => n + sheet.cssRules.length, 0),
    );
    assert(cssRules > 0, 'the stylesheet did not load');
    await waitUntil(
        page,
        `${who.label}'s chat socket to open`,
        () => (window.__sockets || []).some((s) => s.readyState === 1),
    );
}

function pill(page, room) {
    return page.locator(`li.room-link[data-room-id="${room}"]`);
}

async function pillJoined(page, room) {
    return pill(page, room).evaluate((p) => p.classList.contains('joined'));
}

async function joinRoom(who, room, title) {
    const { page } = who;
    await pill(page, room).click();
    await waitFor(page.locator(`#room-${room}`), `the room box #room-${room}`);
    const heading = await page.locator(`#room-${room} h2`).textContent();
    assert(heading === title, `room box heading is ${JSON.stringify(heading)}, expected ${JSON.stringify(title)}`);
    assert(await pillJoined(page, room), `the pill of room ${room} is not marked joined`);
    await waitUntil(
        page,
        `the Send button of #room-${room} to be enabled`,
        (room) => {
            const b = document.querySelector(`#room-${room} form button`);
            return b && !b.disabled;
        },
        room,
    );
}

async function say(who, room, text, { enter = false } = {}) {
    const input = who.page.locator(`#room-${room} form input[name="message"]`);
    await input.fill(text);
    if (enter) {
        await input.press('Enter');
    } else {
        await who.page.locator(`#room-${room} form button[type="submit"]`).click();
    }
    await waitUntil(who.page, `the message input of #room-${room} to be cleared`, (room) =>
        document.querySelector(`#room-${room} form input[name="message"]`)?.value === '', room);
}

let browser;
let A;
let B;

async function main() {
    const started = Date.now();
    const { a, b, room, staffRoom } = cfg;
    console.log(`e2e: ${cfg.base} — ${a.name} (A) and ${b.name} (B), room ${room}, staff room ${staffRoom}`);

    await step('launch Chromium', async () => {
        browser = await launchChromium();
        A = await newUserPage(browser, 'A');
        B = await newUserPage(browser, 'B');
    });

    await step(`A (${a.name}) is sent to the login page, logs in and lands on /`, () => login(A, a));
    await step(`B (${b.name}) is sent to the login page, logs in and lands on /`, () => login(B, b));

    const roomTitle = (await pill(A.page, room).textContent()).trim();
    const staffTitle = (await pill(A.page, staffRoom).textContent()).trim();

    await step(`A joins room ${room} (${roomTitle})`, () => joinRoom(A, room, roomTitle));
    await step(`B joins room ${room}`, () => joinRoom(B, room, roomTitle));
    await step(`A sees "${b.name} joined the room!"`, () =>
        waitForNotice(A.page, 'A', room, `${b.name} joined the room!`));

    const hello = `Hello from ${a.name} @ ${Date.now()}`;
    await step('A sends a message (Send button); B sees it live', async () => {
        await say(A, room, hello);
        await waitForChat(B.page, 'B', room, a.name, hello);
        await waitForChat(A.page, 'A', room, a.name, hello);
    });

    const reply = `Hi ${a.name}, ${b.name} here — ünïcödé ✓`;
    await step('B replies (Enter key); A sees it live', async () => {
        await say(B, room, reply, { enter: true });
        await waitForChat(A.page, 'A', room, b.name, reply);
    });

    const evil = '<img src=x onerror="window.__pwned=1">';
    await step('an HTML-injection message is shown as literal text', async () => {
        await say(B, room, evil);
        await waitForChat(B.page, 'B', room, b.name, evil);
        await waitForChat(A.page, 'A', room, b.name, evil);
        await B.page.waitForTimeout(300); // give a (wrongly) inserted <img> time to fail loading
        for (const who of [A, B]) {
            const found = await who.page.evaluate((room) => ({
                imgs: document.querySelectorAll(`#room-${room} .messages img`).length,
                pwned: typeof window.__pwned,
            }), room);
            assert(found.imgs === 0, `${who.label}: the message created ${found.imgs} <img> element(s)`);
            assert(found.pwned === 'undefined', `${who.label}: window.__pwned is set — the markup ran`);
        }
    });

    await step(`B is refused the staff-only room ${staffRoom} (${staffTitle}) with an inline banner`, async () => {
        const before = await B.page.locator('#errors .error').count();
        await pill(B.page, staffRoom).click();
        const banner = B.page.locator('#errors .error').nth(before);
        await waitFor(banner, 'an error banner in #errors');
        const code = await banner.getAttribute('data-code');
        const text = await banner.locator('.error-text').textContent();
        assert(code === 'ROOM_ACCESS_DENIED', `banner code is ${JSON.stringify(code)}`);
        assert(text === 'You are not allowed in that room.', `banner text is ${JSON.stringify(text)}`);
        await waitUntil(B.page, `the pill of room ${staffRoom} to lose "joined"`, (r) =>
            !document.querySelector(`li.room-link[data-room-id="${r}"]`).classList.contains('joined'), staffRoom);
        assert((await B.page.locator(`#room-${staffRoom}`).count()) === 0, 'B got a box for the staff room');
        assert(await pillJoined(B.page, room), `B's pill of room ${room} lost "joined"`);
        // The banner is dismissable.
        await banner.locator('button.dismiss').click();
        await waitFor(banner, 'the dismissed banner', 'detached');
    });

    await step(`A (staff) may join the staff-only room ${staffRoom}`, () => joinRoom(A, staffRoom, staffTitle));

    await step(`B leaves room ${room} by clicking its pill; A sees "${b.name} left the room!"`, async () => {
        await pill(B.page, room).click();
        await waitFor(B.page.locator(`#room-${room}`), `B's room box #room-${room}`, 'detached');
        assert(!(await pillJoined(B.page, room)), `B's pill of room ${room} is still marked joined`);
        await waitForNotice(A.page, 'A', room, `${b.name} left the room!`);
    });

    await step('A still chats after B left (B no longer receives)', async () => {
        const last = `still here @ ${Date.now()}`;
        await say(A, room, last);
        await waitForChat(A.page, 'A', room, a.name, last);
        assert((await B.page.locator(`#room-${room}`).count()) === 0, 'B got a box back');
    });

    const shot = path.join(artifacts, 'chat-A.png');
    await step('screenshot of A\'s page', async () => {
        await A.page.screenshot({ path: shot, fullPage: true, timeout: TIMEOUT_MS });
    });
    console.log(`e2e: screenshot of A's page: ${shot}`);

    for (const [who, user] of [[A, a], [B, b]]) {
        await step(`${who.label} logs out through the POST form and gets the logged-out page`, async () => {
            const { page } = who;
            const [response] = await Promise.all([
                page.waitForResponse(
                    (r) => r.url() === cfg.base + '/accounts/logout/' && r.request().method() === 'POST',
                    { timeout: TIMEOUT_MS },
                ),
                page.click('header form.logout button'),
            ]);
            assert(response.status() === 200, `POST /accounts/logout/ answered ${response.status()}`);
            await page.waitForURL(cfg.base + '/accounts/logout/');
            await waitFor(page.locator('text=Thanks for spending some quality time'), 'the logged-out text');
            const h1 = await page.locator('header h1').textContent();
            assert(h1 === 'Logged out', `logged-out page header is ${JSON.stringify(h1)}`);
            assert((await page.locator('header form.logout').count()) === 0, 'the logout form is still shown');
            const again = await page.goto(cfg.base + '/');
            assert(again && again.ok(), `GET / after logout answered ${again && again.status()}`);
            assert(
                new URL(page.url()).pathname === '/accounts/login/',
                `${user.name} still gets / after logging out (${page.url()})`,
            );
        });
    }

    console.log(`e2e: all ${stepCount()} steps passed in ${Date.now() - started} ms`);
}

async function failureShots() {
    for (const who of [A, B]) {
        if (!who) {
            continue;
        }
        const file = path.join(artifacts, `failure-${who.label}.png`);
        try {
            await who.page.screenshot({ path: file, fullPage: true, timeout: 5000 });
            console.error(`e2e: ${who.label}'s page at the failure (${who.page.url()}): ${file}`);
        } catch {
            /* best effort */
        }
    }
}

let code = 0;
try {
    await main();
} catch (err) {
    code = 1;
    console.error(`e2e: FAILED — ${err && err.message ? err.message : err}`);
    await failureShots();
} finally {
    if (browser) {
        await browser.close().catch(() => {});
    }
    clearTimeout(timer);
}
process.exit(code);

// Screenshot and layout test of the pages at a desktop width (1280×800) and a phone's
// (375×667, a touch screen at 2× pixels): the login page, the room index (logged in), the chat
// (a room joined, a message typed, sent and shown) and the 404 page of a missing static file.
// On every page nothing may overflow horizontally: the document is no wider than the viewport
// and every visible element's box lies within it, and no block's content spills out of it. The
// chat must be usable: the message input and Send button are visible, inside the viewport,
// large enough to tap and not covered; a message is typed, sent and appears; the room's pill
// leaves and joins again; the Logout button does not sit on the page title. Every page is
// screenshotted (full page) into E2E_ARTIFACTS whether or not it passes.
//
// Usage: node layout.mjs BASE_URL USER PASSWORD ROOM_ID
// Exits 0 when every check passed, 1 (with the failing step and the screenshots) otherwise.

import fs from 'node:fs';
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

const [argBase, user, password, room] = process.argv.slice(2);
if (!argBase || !user || !password || !room) {
    console.error('usage: node layout.mjs BASE_URL USER PASSWORD ROOM_ID');
    process.exit(2);
}
const base = argBase.replace(/\/+$/, '');
const timer = watchdog(100_000); // inside tests/browser.rs's 120 s
const artifacts = artifactsDir('layout');

const VIEWPORTS = [
    { name: 'desktop', options: { viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1 } },
    {
        name: 'phone',
        options: {
            viewport: { width: 375, height: 667 },
            deviceScaleFactor: 2,
            isMobile: true,
            hasTouch: true,
            userAgent:
                'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36',
        },
    },
];
/** WCAG 2.2's minimum target size (2.5.8), in CSS pixels. */
const MIN_TARGET = 24;
const shots = [];

async function screenshot(page, name) {
    const file = path.join(artifacts, `${name}.png`);
    await page.screenshot({ path: file, fullPage: true, timeout: TIMEOUT_MS });
    shots.push(file);
}

/** Everything that overflows the viewport horizontally, or spills out of its own box. */
async function overflowReport(page) {
    return page.evaluate(() => {
        const vw = window.innerWidth;
        const describe = (el) => {
            const cls = el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : '';
            return `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${cls}`;
        };
        const problems = [];
        const doc = document.documentElement;
        if (doc.scrollWidth > vw) {
            problems.push(`the document is ${doc.scrollWidth} px wide in a ${vw} px viewport`);
        }
        for (const el of document.body.querySelectorAll('*')) {
            const style = getComputedStyle(el);
            if (style.display === 'none' || style.visibility === 'hidden' || el.getClientRects().length === 0) {
                continue;
            }
            const r = el.getBoundingClientRect();
            if (r.width === 0 && r.height === 0) {
                continue;
            }
            if (r.left < -0.5 || r.right > vw + 0.5) {
                problems.push(`${describe(el)} spans x ${Math.round(r.left)}..${Math.round(r.right)} (viewport ${vw})`);
            }
            const clips = style.overflowX !== 'visible';
            if (!clips && style.display !== 'inline' && el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1) {
                problems.push(`${describe(el)}'s content is ${el.scrollWidth} px wide in its ${el.clientWidth} px box`);
            }
        }
        return { vw, problems };
    });
}

async function assertNoOverflow(page, what, width) {
    const { vw, problems } = await overflowReport(page);
    assert(vw === width, `${what}: the viewport is ${vw} px wide, expected ${width} (the page zoomed out?)`);
    assert(problems.length === 0, `${what} overflows: ${problems.slice(0, 8).join('; ')}`);
}

/** A control the user must reach: visible, inside the viewport once scrolled to, big enough, on top. */
async function assertUsable(page, locator, what, width) {
    await waitFor(locator, what);
    await locator.scrollIntoViewIfNeeded({ timeout: TIMEOUT_MS });
    const found = await locator.evaluate((el, min) => {
        const r = el.getBoundingClientRect();
        const x = r.left + r.width / 2;
        const y = r.top + r.height / 2;
        const top = document.elementFromPoint(x, y);
        return {
            box: [r.left, r.top, r.right, r.bottom].map(Math.round),
            inside: r.left >= 0 && r.top >= 0 && r.right <= window.innerWidth && r.bottom <= window.innerHeight,
            big: r.width >= min && r.height >= min,
            onTop: top !== null && (top === el || el.contains(top)),
            vw: window.innerWidth,
            vh: window.innerHeight,
        };
    }, MIN_TARGET);
    assert(found.vw === width, `${what}: the viewport is ${found.vw} px wide, expected ${width} (the page zoomed out?)`);
    assert(found.inside, `${what} at ${found.box} is not inside the ${found.vw}×${found.vh} viewport`);
    assert(found.big, `${what} at ${found.box} is smaller than ${MIN_TARGET}×${MIN_TARGET} px`);
    assert(found.onTop, `${what} at ${found.box} is covered by another element`);
}

/** The Logout button must not sit on the header's title text. */
async function assertHeaderClear(page) {
    const overlap = await page.evaluate(() => {
        const button = document.querySelector('header form.logout button');
        const h1 = document.querySelector('header h1');
        if (!button || !h1) {
            return null;
        }
        const b = button.getBoundingClientRect();
        const range = document.createRange();
        range.selectNodeContents(h1);
        for (const t of range.getClientRects()) {
            if (t.left < b.right && b.left < t.right && t.top < b.bottom && b.top < t.bottom) {
                return `title text at ${[t.left, t.top, t.right, t.bottom].map(Math.round)}, button at ${[b.left, b.top, b.right, b.bottom].map(Math.round)}`;
            }
        }
        return null;
    });
    assert(overlap === null, `the Logout button overlaps the page title: ${overlap}`);
}

async function tapOrClick(locator, touch) {
    if (touch) {
        await locator.tap({ timeout: TIMEOUT_MS });
    } else {
        await locator.click({ timeout: TIMEOUT_MS });
    }
}

async function run(browser, { name, options }) {
    const width = options.viewport.width;
    const touch = Boolean(options.hasTouch);
    const { context, page } = await observedPage(browser, options, name);
    let expect404 = null;
    page.on('response', (response) => {
        if (response.status() >= 400 && response.url() !== expect404) {
            incidents.push(`${name}: ${response.request().method()} ${response.url()} answered ${response.status()}`);
        }
    });
    try {
        await step(`${name}: the login page fits`, async () => {
            const response = await page.goto(`${base}/accounts/login/`);
            assert(response.ok(), `GET /accounts/login/ answered ${response.status()}`);
            await screenshot(page, `login-${name}`);
            await assertNoOverflow(page, 'the login page', width);
            for (const [selector, what] of [
                ['#id_username', 'the username input'],
                ['#id_password', 'the password input'],
                ['form.login button[type="submit"]', 'the Login button'],
            ]) {
                await assertUsable(page, page.locator(selector), what, width);
            }
        });

        await step(`${name}: the room index (logged in) fits`, async () => {
            await page.fill('#id_username', user);
            await page.fill('#id_password', password);
            await Promise.all([
                page.waitForURL(`${base}/`, { timeout: TIMEOUT_MS }),
                tapOrClick(page.locator('form.login button[type="submit"]'), touch),
            ]);
            await waitFor(page.locator('header form.logout button'), 'the Logout button');
            await waitUntil(page, 'the chat socket to open', () =>
                (window.__sockets || []).some((s) => s.readyState === 1));
            await screenshot(page, `index-${name}`);
            await assertNoOverflow(page, 'the index page', width);
            await assertHeaderClear(page);
            await assertUsable(page, page.locator('header form.logout button'), 'the Logout button', width);
            const pills = page.locator('li.room-link');
            for (let i = 0; i < (await pills.count()); i += 1) {
                await assertUsable(page, pills.nth(i), `room pill ${i + 1}`, width);
            }
        });

        const pill = page.locator(`li.room-link[data-room-id="${room}"]`);
        const box = page.locator(`#room-${room}`);
        const input = box.locator('form input[name="message"]');
        const send = box.locator('form button[type="submit"]');
        const message = `Hello from the ${name}: a long word https://example.com/${'very-long-path-'.repeat(6)}end`;
        await step(`${name}: join a room, type and send a message; it appears and nothing overflows`, async () => {
            await tapOrClick(pill, touch);
            await waitFor(box, `the room box #room-${room}`);
            await waitUntil(page, 'the Send button to be enabled', (r) => {
                const b = document.querySelector(`#room-${r} form button`);
                return b && !b.disabled;
            }, room);
            await assertUsable(page, input, 'the message input', width);
            await assertUsable(page, send, 'the Send button', width);
            const inputWidth = await input.evaluate((el) => el.getBoundingClientRect().width);
            assert(inputWidth >= Math.min(200, width / 2), `the message input is only ${Math.round(inputWidth)} px wide`);
            await tapOrClick(input, touch);
            await page.keyboard.type(message);
            await tapOrClick(send, touch);
            const line = box.locator('.messages .message').filter({ hasText: message });
            await waitFor(line, 'the sent message in the room box');
            const shown = await line.evaluate((el) => {
                const r = el.getBoundingClientRect();
                const m = el.closest('.messages').getBoundingClientRect();
                return {
                    user: el.querySelector('.username')?.textContent,
                    visible: r.top >= m.top - 1 && r.bottom <= m.bottom + 1,
                };
            });
            assert(shown.user === user, `the message is shown as from ${JSON.stringify(shown.user)}`);
            assert(shown.visible, 'the sent message is not scrolled into view in its box');
            assert((await input.inputValue()) === '', 'the input was not cleared after sending');
            await box.scrollIntoViewIfNeeded();
            await screenshot(page, `chat-${name}`);
            await assertNoOverflow(page, 'the chat', width);
            await assertHeaderClear(page);
        });

        await step(`${name}: the room's pill leaves and joins again`, async () => {
            await assertUsable(page, pill, 'the joined room pill', width);
            await tapOrClick(pill, touch);
            await waitFor(box, 'the room box after leaving', 'detached');
            await tapOrClick(pill, touch);
            await waitFor(box, 'the room box after joining again');
            await assertUsable(page, send, 'the Send button after joining again', width);
        });

        await step(`${name}: a missing static file shows our 404 page`, async () => {
            expect404 = `${base}/static/missing.css`;
            const response = await page.goto(expect404);
            assert(response.status() === 404, `GET /static/missing.css answered ${response.status()}`);
            assert((await page.title()) === 'Not Found', `the 404 page's title is ${JSON.stringify(await page.title())}`);
            const header = await page.locator('header').evaluate((el) => getComputedStyle(el).backgroundColor);
            assert(header === 'rgb(87, 120, 196)', `the 404 page is not styled (header background ${header})`);
            await screenshot(page, `404-${name}`);
            await assertNoOverflow(page, 'the 404 page', width);
            expect404 = null;
        });

        if (name === 'desktop') {
            await step('the favicon decodes as an image', async () => {
                const size = await page.evaluate(async () => {
                    const img = new Image();
                    img.src = '/favicon.ico';
                    await img.decode();
                    return [img.naturalWidth, img.naturalHeight];
                });
                assert(size[0] >= 16 && size[0] === size[1], `/favicon.ico decoded as ${size.join('×')}`);
            });
        }
    } catch (err) {
        const file = path.join(artifacts, `failure-${name}.png`);
        await page.screenshot({ path: file, fullPage: true, timeout: 5000 }).then(
            () => shots.push(file),
            () => {},
        );
        throw err;
    } finally {
        await context.close().catch(() => {});
    }
}

let browser;
let code = 0;
try {
    await step('launch Chromium', async () => {
        browser = await launchChromium();
    });
    // Each width runs to its first failure; the other still runs, for its screenshots.
    const failures = [];
    for (const viewport of VIEWPORTS) {
        await run(browser, viewport).catch((err) => failures.push(err && err.message ? err.message : String(err)));
        incidents.splice(0);
    }
    if (failures.length) {
        throw new Error(failures.join('\n  '));
    }
    console.log(`layout: all ${stepCount()} steps passed`);
} catch (err) {
    code = 1;
    console.error(`layout: FAILED — ${err && err.message ? err.message : err}`);
} finally {
    if (browser) {
        await browser.close().catch(() => {});
    }
    clearTimeout(timer);
}
for (const file of shots) {
    if (fs.existsSync(file)) {
        console.log(`screenshot: ${file}`);
    }
}
process.exit(code);

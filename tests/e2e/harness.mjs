// What the browser scripts (chat.mjs, layout.mjs) share: numbered steps that fail on the first
// problem, waits with named conditions, Chromium's launch, and the artifacts directory where
// screenshots go (E2E_ARTIFACTS, set by tests/browser.rs to a folder under target/).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const TIMEOUT_MS = 10_000; // every single wait

/** Problems seen by event handlers (dialogs, page errors, failed loads); fatal at the next step's end. */
export const incidents = [];

export function assert(condition, message) {
    if (!condition) {
        throw new Error(message);
    }
}

let stepNo = 0;

/** Steps run so far. */
export function stepCount() {
    return stepNo;
}

/** Runs one numbered step; a throw or an incident fails it with its number and name. */
export async function step(name, fn) {
    stepNo += 1;
    const started = Date.now();
    try {
        await fn();
    } catch (err) {
        const msg = err && err.message ? err.message.split('\n')[0] : String(err);
        throw new Error(`step ${stepNo} "${name}" failed: ${msg}`, { cause: err });
    }
    if (incidents.length) {
        throw new Error(`step ${stepNo} "${name}": ${incidents.splice(0).join('; ')}`);
    }
    console.log(`ok ${stepNo} - ${name} (${Date.now() - started} ms)`);
}

/** Waits until `fn(arg)` is truthy in the page; `what` names the condition in the error. */
export async function waitUntil(page, what, fn, arg) {
    try {
        await page.waitForFunction(fn, arg, { timeout: TIMEOUT_MS, polling: 50 });
    } catch {
        throw new Error(`timed out after ${TIMEOUT_MS} ms waiting for ${what}`);
    }
}

/** Waits for a locator to reach `state`; `what` names it in the error. */
export async function waitFor(locator, what, state = 'visible') {
    try {
        await locator.waitFor({ state, timeout: TIMEOUT_MS });
    } catch {
        throw new Error(`timed out after ${TIMEOUT_MS} ms waiting for ${what} to be ${state}`);
    }
}

export function chromiumPath() {
    return process.env.CHROMIUM_PATH || '/usr/bin/chromium';
}

/** Debian's Chromium, headless. */
export async function launchChromium() {
    const executablePath = chromiumPath();
    if (!fs.existsSync(executablePath)) {
        throw new Error(`no Chromium at ${executablePath} (apt-get install chromium, or set CHROMIUM_PATH)`);
    }
    return chromium.launch({
        executablePath,
        headless: true,
        timeout: TIMEOUT_MS,
        args: [
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
            '--font-render-hinting=none',
        ],
    });
}

/**
 * A new context with `options` and a page in it. The page's WebSockets are observed (not
 * altered) in `window.__sockets`, so a test knows when chat.js is connected; a dialog or an
 * uncaught page error is an incident named by `label`.
 */
export async function observedPage(browser, options, label) {
    const context = await browser.newContext(options);
    context.setDefaultTimeout(TIMEOUT_MS);
    context.setDefaultNavigationTimeout(TIMEOUT_MS);
    await context.addInitScript(() => {
        const Native = window.WebSocket;
        window.__sockets = [];
        window.WebSocket = class extends Native {
            constructor(...args) {
                super(...args);
                window.__sockets.push(this);
            }
        };
    });
    const page = await context.newPage();
    page.on('dialog', async (dialog) => {
        incidents.push(`${label}: unexpected ${dialog.type()} dialog: ${JSON.stringify(dialog.message())}`);
        await dialog.dismiss().catch(() => {});
    });
    page.on('pageerror', (err) => incidents.push(`${label}: uncaught page error: ${err.message}`));
    return { context, page };
}

/** Where screenshots go: E2E_ARTIFACTS (created), or a fresh folder under the system's temp dir. */
export function artifactsDir(name) {
    const dir = process.env.E2E_ARTIFACTS || fs.mkdtempSync(path.join(os.tmpdir(), `whisper-${name}-`));
    fs.mkdirSync(dir, { recursive: true });
    return dir;
}

/** Exits after `ms` whatever is going on (a hung browser must not hang the test). */
export function watchdog(ms) {
    return setTimeout(() => {
        console.error(`e2e: FAILED — the whole run took longer than ${ms / 1000} s`);
        process.exit(1);
    }, ms);
}

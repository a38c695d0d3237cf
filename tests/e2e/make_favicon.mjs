// Makes static/favicon.ico from static/favicon.svg: Chromium renders the SVG at 16, 32 and
// 48 px on a transparent background, and the PNGs are packed into one ICO file (PNG-compressed
// entries, which every current browser reads). Run it after editing the SVG:
//
//   node tests/e2e/make_favicon.mjs        (CHROMIUM_PATH overrides /usr/bin/chromium)
//
// The result is committed; the server compiles it in and serves it at /favicon.ico.

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const SIZES = [16, 32, 48];
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const svgPath = path.join(root, 'static', 'favicon.svg');
const icoPath = path.join(root, 'static', 'favicon.ico');

/** An ICO file holding `pngs` (Buffers of square PNGs with their `size`). */
function packIco(pngs) {
    const header = Buffer.alloc(6);
    header.writeUInt16LE(0, 0); // reserved
    header.writeUInt16LE(1, 2); // 1 = icon
    header.writeUInt16LE(pngs.length, 4);
    const entries = [];
    let offset = 6 + 16 * pngs.length;
    for (const { size, png } of pngs) {
        const entry = Buffer.alloc(16);
        entry.writeUInt8(size >= 256 ? 0 : size, 0); // width
        entry.writeUInt8(size >= 256 ? 0 : size, 1); // height
        entry.writeUInt8(0, 2); // no palette
        entry.writeUInt8(0, 3); // reserved
        entry.writeUInt16LE(1, 4); // colour planes
        entry.writeUInt16LE(32, 6); // bits per pixel
        entry.writeUInt32LE(png.length, 8);
        entry.writeUInt32LE(offset, 12);
        offset += png.length;
        entries.push(entry);
    }
    return Buffer.concat([header, ...entries, ...pngs.map((p) => p.png)]);
}

const svg = fs.readFileSync(svgPath);
const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu'],
});
try {
    const page = await browser.newPage({ viewport: { width: 64, height: 64 }, deviceScaleFactor: 1 });
    const pngs = [];
    for (const size of SIZES) {
        const src = `data:image/svg+xml;base64,${svg.toString('base64')}`;
        await page.setContent(
            `<style>html,body{margin:0;background:transparent}</style><img src="${src}" width="${size}" height="${size}">`,
        );
        await page.locator('img').evaluate((img) => img.decode());
        const png = await page.screenshot({ clip: { x: 0, y: 0, width: size, height: size }, omitBackground: true });
        pngs.push({ size, png });
    }
    fs.writeFileSync(icoPath, packIco(pngs));
    console.log(`wrote ${icoPath} (${SIZES.join(', ')} px, ${fs.statSync(icoPath).size} bytes)`);
} finally {
    await browser.close();
}

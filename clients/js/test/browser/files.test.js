// Encrypted files in headless Chromium, through the host page and the demo miniapp, against the
// real services: alice attaches a file (a progress bar while it is sent), bob sees it appear with
// its name and size, downloads it and gets the same bytes, keeps it among his saved files (the
// quota figure moves). The file's bytes and name are nowhere the services could see them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, mkdirSync, writeFileSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import puppeteer from 'puppeteer-core';
import { startStack } from '../harness.js';
import { startDemoServer } from '../../../demo/server.js';

const BASE = Number(process.env.BROWSER_FILES_TEST_PORT_BASE ?? 19500);
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = resolve(process.env.BROWSER_TEST_ARTIFACTS ?? new URL('../../test-artifacts', import.meta.url).pathname);
const T = 20_000;

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;
/** @type {Awaited<ReturnType<typeof startDemoServer>>} */
let demo;
/** @type {import('puppeteer-core').Browser} */
let browser;
const profile = mkdtempSync(join(tmpdir(), 'boxes-chromium-'));
const work = mkdtempSync(join(tmpdir(), 'boxes-files-'));
const pageErrors = /** @type {string[]} */ ([]);
const consoleLines = /** @type {string[]} */ ([]);
/** @type {import('puppeteer-core').Page[]} */
const pages = [];

before(async () => {
  const hostOrigin = `http://127.0.0.1:${BASE + 5}`;
  const appOrigin = `http://127.0.0.1:${BASE + 6}`;
  stack = await startStack({ base: BASE, allowedOrigins: [hostOrigin, appOrigin], monitorRedis: true });
  demo = await startDemoServer({
    hostPort: BASE + 5,
    appPort: BASE + 6,
    authUrl: stack.authUrl,
    boxesUrl: stack.boxesUrl,
    realtimeUrl: stack.realtimeUrl,
    hostappUrl: stack.hostappUrl,
  });
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: false, // the flag is passed below as given, not puppeteer's variant
    userDataDir: profile,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  await demo?.close();
  await stack?.stop();
  rmSync(profile, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

/** @param {string} url */
async function open(url) {
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  await page.setViewport({ width: 1180, height: 760 });
  pages.push(page);
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => consoleLines.push(`${pages.indexOf(page)} ${m.type()}: ${m.text()}`));
  await page.goto(url);
  return { ctx, page };
}

/** @param {import('puppeteer-core').Page} page */
async function miniapp(page) {
  const frame = await page.waitForFrame((f) => f.url().startsWith(demo.appUrl), { timeout: T });
  await frame.waitForFunction(() => document.getElementById('my-id')?.textContent, { timeout: T });
  return frame;
}

/** @param {import('puppeteer-core').Frame} f @param {string} sel @param {string} text */
function waitText(f, sel, text) {
  return f.waitForFunction(
    (s, t) => [...document.querySelectorAll(s)].some((e) => e.textContent?.includes(t)),
    { timeout: T },
    sel,
    text,
  );
}

/** @param {import('puppeteer-core').Frame} f @param {string} sel @param {string} text */
async function typeAndSubmit(f, sel, text) {
  await f.waitForSelector(sel, { timeout: T });
  await f.type(sel, text);
  await f.$eval(sel, (el) => /** @type {HTMLInputElement} */ (el).form?.requestSubmit());
}

/** Every file under a directory. @param {string} dir */
const filesUnder = (dir) =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath ?? d.path, d.name));

test('alice sends bob an encrypted file in the demo; he downloads and keeps it', { timeout: 180_000 }, async () => {
  try {
    await story();
  } catch (e) {
    mkdirSync(ARTIFACTS, { recursive: true });
    for (const [i, p] of pages.entries()) await p.screenshot({ path: join(ARTIFACTS, `files-failure-${i}.png`) }).catch(() => {});
    console.error(['page console:', ...consoleLines, 'page errors:', ...pageErrors].join('\n'));
    throw e;
  }
});

async function story() {
  const name = 'holiday-plan-secret.pdf';
  const plain = randomBytes(3 * 1024 * 1024 + 777);
  const digest = createHash('sha256').update(plain).digest('hex');
  const path = join(work, name);
  writeFileSync(path, plain);

  const alice = await open(`${demo.hostUrl}/?user=alice`);
  const bob = await open(`${demo.hostUrl}/?user=bob`);
  const a = await miniapp(alice.page);
  const b = await miniapp(bob.page);
  await a.waitForSelector('#conn.open', { timeout: T });
  await b.waitForSelector('#conn.open', { timeout: T });
  await waitText(b, '#quota', '0 B of 1.0 GB used');

  const bobId = await b.$eval('#my-id', (e) => e.textContent ?? '');
  await typeAndSubmit(a, '#contact-id', bobId);
  await waitText(a, '.box-head h1', 'Alice Martin - Bob');
  await waitText(b, '#boxes .box .title', 'Alice Martin - Bob');
  await b.click('#boxes .box');
  await waitText(b, '.box-head .members', 'Bob');

  // Alice attaches the file; the progress bar shows while it is sent, and follows it forward.
  await a.evaluate(() => {
    /** @type {any} */ (window).seenProgress = [];
    new MutationObserver(() => {
      const p = /** @type {HTMLProgressElement | null} */ (document.getElementById('upload-progress'));
      if (p) /** @type {any} */ (window).seenProgress.push([p.value, p.max]);
    }).observe(document.getElementById('main') ?? document.body, { subtree: true, childList: true });
  });
  // Alice's line is slow (about 2 MB/s up), so the bar can be seen half way.
  // (The miniapp's frame is same-site with the host page, so it shares the page's target.)
  const cdp = await alice.page.createCDPSession();
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 2_000_000 });
  const input = /** @type {import('puppeteer-core').ElementHandle<HTMLInputElement>} */ (await a.$('#file-input'));
  await input.uploadFile(path);
  await a.waitForFunction(
    () => {
      const p = /** @type {HTMLProgressElement | null} */ (document.getElementById('upload-progress'));
      return p && p.value > p.max * 0.3 && p.value < p.max * 0.8;
    },
    { timeout: T, polling: 20 },
  );
  mkdirSync(ARTIFACTS, { recursive: true });
  await alice.page.screenshot({ path: join(ARTIFACTS, 'files-alice-sending.png') });
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  await waitText(a, '.msg.file.mine .text', name);
  await a.waitForSelector('#upload[hidden]', { timeout: T });
  const seen = /** @type {Array<[number, number]>} */ (await a.evaluate(() => /** @type {any} */ (window).seenProgress));
  assert.ok(seen.length >= 2, `the progress bar was shown and moved (${seen.length} updates)`);
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i][0] >= seen[i - 1][0], 'the bar only moves forward');
  assert.ok(seen.some(([v, max]) => v === max && max > plain.length), 'the bar reached the end');

  // Bob sees it live: name and size, nothing downloaded yet.
  await waitText(b, '.msg.file .text', name);
  await waitText(b, '.msg.file .size', '3.0 MB');
  await waitText(b, '#boxes .box .preview', name);
  mkdirSync(ARTIFACTS, { recursive: true });
  await alice.page.screenshot({ path: join(ARTIFACTS, 'files-alice-sent.png') });

  // He downloads it: decrypted in his browser, offered as a link to save, the same bytes.
  await b.$eval('.msg.file [data-act=download]', (e) => /** @type {HTMLElement} */ (e).click());
  await b.waitForSelector('.msg.file a.save', { timeout: T });
  const got = await b.$eval('.msg.file a.save', async (el) => {
    const link = /** @type {HTMLAnchorElement} */ (el);
    const buf = await (await fetch(link.href)).arrayBuffer();
    const hash = [...new Uint8Array(await crypto.subtle.digest('SHA-256', buf))].map((x) => x.toString(16).padStart(2, '0')).join('');
    return { hash, size: buf.byteLength, download: link.download, href: link.href };
  });
  assert.equal(got.download, name);
  assert.equal(got.size, plain.length);
  assert.equal(got.hash, digest, 'bob got the very bytes alice attached');
  assert.match(got.href, /^blob:/);

  // He keeps it: it joins his saved files, and his quota figure counts it.
  await b.$eval('.msg.file [data-act=keep]', (e) => /** @type {HTMLElement} */ (e).click());
  await waitText(b, '#saved-files .saved .name', name);
  await waitText(b, '.msg.file .kept', 'Kept');
  await waitText(b, '#quota', '3.0 MB of 1.0 GB used');
  await b.$eval('#saved-files [data-act=open]', (e) => /** @type {HTMLElement} */ (e).click());
  await b.waitForSelector('#saved-files a.save', { timeout: T });
  await bob.page.screenshot({ path: join(ARTIFACTS, 'files-bob-downloaded.png') });

  assert.deepEqual(pageErrors, []);
  assert.equal(await a.$eval('#toast', (e) => e.textContent), '', 'alice saw no error');
  assert.match((await b.$eval('#toast', (e) => e.textContent)) ?? '', /^(|Kept .*)$/, 'bob saw no error');

  // What the services hold: the blob, never the bytes or the name in the clear.
  const blobs = filesUnder(stack.filesDir);
  assert.equal(blobs.length, 1, 'one blob stored');
  const blob = readFileSync(blobs[0]);
  assert.equal(blob.length, 16 + plain.length + 16 * Math.ceil(plain.length / 65536));
  for (const at of [0, 65536, plain.length - 64]) assert.ok(!blob.includes(plain.subarray(at, at + 64)), 'no plaintext in the blob');
  const places = { database: stack.dumpDatabase(), redis: stack.redisTraffic(), logs: stack.logs() };
  assert.ok(places.database.includes(bobId), 'the dump holds the data');
  for (const [where, text] of Object.entries(places)) {
    assert.ok(!text.includes('holiday-plan'), `the file name is in the ${where}`);
    assert.ok(!text.includes(plain.subarray(0, 32).toString('base64url')), `file bytes are in the ${where}`);
  }
  for (const p of [alice, bob]) await p.ctx.close();
}

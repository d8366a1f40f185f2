// The two-user story in headless Chromium, through the host page, the real Boxo SDKs and the demo
// miniapp, against the real services: alice and bob contact each other, exchange messages that
// appear live, edit and delete them, invite carol by a link she opens to join, bob leaves, alice
// deletes the box. Then the trust model: no plaintext, invitation share or secret key the browsers
// held is in the database, in what crossed Redis, or in any service log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import puppeteer from 'puppeteer-core';
import { startStack } from '../harness.js';
import { startDemoServer } from '../../../demo/server.js';

const BASE = Number(process.env.BROWSER_TEST_PORT_BASE ?? 19300);
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = resolve(process.env.BROWSER_TEST_ARTIFACTS ?? new URL('../../test-artifacts', import.meta.url).pathname);
const T = 15_000;

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;
/** @type {Awaited<ReturnType<typeof startDemoServer>>} */
let demo;
/** @type {import('puppeteer-core').Browser} */
let browser;
const profile = mkdtempSync(join(tmpdir(), 'boxes-chromium-'));
/** Requests the pages made to anything but this machine (Boxo's cloud): they must not matter. */
const outside = new Set();
/** Every URL the demo server was asked for: an invitation share must never be among them. */
const demoRequests = /** @type {string[]} */ ([]);
/** Uncaught errors in any page or frame. */
const pageErrors = /** @type {string[]} */ ([]);
/** What the pages wrote to their consoles, shown when the story fails. */
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
    onRequest: (url) => demoRequests.push(url),
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
      // Both Boxo SDKs try to reach Boxo's cloud; every name but 127.0.0.1 resolves to nothing here.
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  await demo?.close();
  await stack?.stop();
  rmSync(profile, { recursive: true, force: true });
});

/** One person: their own browser context (storage, IndexedDB), the host page and the miniapp frame.
 * @param {string} url */
async function open(url) {
  const ctx = await browser.createBrowserContext();
  const page = await ctx.newPage();
  await page.setViewport({ width: 1180, height: 760 });
  pages.push(page);
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => consoleLines.push(`${pages.indexOf(page)} ${m.type()}: ${m.text()} ${m.location()?.url ?? ''}`));
  page.on('request', (r) => {
    const host = new URL(r.url()).hostname;
    if (host !== '127.0.0.1' && host !== 'localhost') outside.add(host);
  });
  await page.goto(url);
  return { ctx, page };
}

/** @param {import('puppeteer-core').Page} page */
async function miniapp(page) {
  const frame = await page.waitForFrame((f) => f.url().startsWith(demo.appUrl), { timeout: T });
  await frame.waitForFunction(() => document.getElementById('my-id')?.textContent, { timeout: T });
  return frame;
}

/** Waits until an element matching `sel` contains `text`.
 * @param {import('puppeteer-core').Frame} f @param {string} sel @param {string} text */
function waitText(f, sel, text) {
  return f.waitForFunction(
    (s, t) => [...document.querySelectorAll(s)].some((e) => e.textContent?.includes(t)),
    { timeout: T },
    sel,
    text,
  );
}

/** Clicks `button` inside the first `item` whose text contains `text`.
 * @param {import('puppeteer-core').Frame} f @param {string} item @param {string} text @param {string} button */
async function clickIn(f, item, text, button) {
  const ok = await f.evaluate(
    (i, t, b) => {
      const el = [...document.querySelectorAll(i)].find((e) => e.textContent?.includes(t));
      const btn = /** @type {HTMLElement | null | undefined} */ (el?.querySelector(b));
      btn?.click();
      return !!btn;
    },
    item,
    text,
    button,
  );
  assert.ok(ok, `no ${button} in ${item} with "${text}"`);
}

/** @param {import('puppeteer-core').Frame} f @param {string} sel @param {string} text */
async function typeAndSubmit(f, sel, text) {
  await f.waitForSelector(sel, { timeout: T });
  await f.type(sel, text);
  await f.$eval(sel, (el) => /** @type {HTMLInputElement} */ (el).form?.requestSubmit());
}

/** Everything secret the miniapp keeps in the frame's IndexedDB: identity secret keys, box
 * secret keys and invitation shares (unpadded URL-safe base64).
 * @param {import('puppeteer-core').Frame} f */
function deviceSecrets(f) {
  return f.evaluate(
    () =>
      new Promise((ok, ko) => {
        const req = indexedDB.open('boxes-keys', 1);
        req.onerror = () => ko(req.error);
        req.onsuccess = () => {
          const all = req.result.transaction('keys').objectStore('keys').getAll();
          all.onerror = () => ko(all.error);
          all.onsuccess = () => {
            /** @type {string[]} */
            const out = [];
            for (const v of all.result) {
              if (typeof v !== 'string') continue;
              if (v.startsWith('{')) {
                const j = JSON.parse(v);
                if (j.secret_key) out.push(j.secret_key);
                if (j.invitation_share) out.push(j.invitation_share);
              } else out.push(v);
            }
            ok(out);
          };
        };
      }),
  );
}

/** The forms a secret could take in a dump: unpadded URL-safe base64, standard base64, hex.
 * @param {string} b64u */
function encodings(b64u) {
  const bytes = Buffer.from(b64u, 'base64url');
  return [b64u, bytes.toString('base64'), bytes.toString('base64').replace(/=+$/, ''), bytes.toString('hex')];
}

test('alice, bob and carol in the browser, through the host page and the Boxo SDKs', { timeout: 180_000 }, async () => {
  try {
    await story();
  } catch (e) {
    mkdirSync(ARTIFACTS, { recursive: true });
    for (const [i, p] of pages.entries()) await p.screenshot({ path: join(ARTIFACTS, `failure-${i}.png`) }).catch(() => {});
    console.error(['page console:', ...consoleLines, 'page errors:', ...pageErrors].join('\n'));
    throw e;
  }
});

async function story() {
  /** @type {Set<string>} */
  const secrets = new Set();
  const plaintexts = [
    'Hi Bob, the door code is 4711-secret',
    'Thanks Alice! Meet at the blue cafe',
    'Hi Bob, the door code is 4711-secret (changed to 0815)',
    'Welcome Carol, nobody else can read this',
  ];

  const alice = await open(`${demo.hostUrl}/?user=alice`);
  const bob = await open(`${demo.hostUrl}/?user=bob`);
  const a = await miniapp(alice.page);
  const b = await miniapp(bob.page);
  assert.equal(await a.$eval('#me-name', (e) => e.textContent), 'Alice Martin');
  assert.equal(await b.$eval('#me-name', (e) => e.textContent), 'Bob');
  await a.waitForSelector('#conn.open', { timeout: T });
  await b.waitForSelector('#conn.open', { timeout: T });

  // Alice contacts bob by his id; bob's miniapp accepts the invitation and lists the box.
  const bobId = await b.$eval('#my-id', (e) => e.textContent ?? '');
  await typeAndSubmit(a, '#contact-id', bobId);
  await waitText(a, '.box-head h1', 'Alice Martin - Bob');
  await waitText(b, '#boxes .box .title', 'Alice Martin - Bob');

  // A message while bob looks elsewhere: an unread count and a decrypted preview in his list.
  await typeAndSubmit(a, '#message', plaintexts[0]);
  await waitText(a, '.msg.mine .text', plaintexts[0]);
  await waitText(b, '#boxes .box .badge', '1');
  await waitText(b, '#boxes .box .preview', plaintexts[0]);

  // Bob opens the box (read: the badge goes) and answers; it appears live on alice's side.
  await b.click('#boxes .box');
  await waitText(b, '.msg .text', plaintexts[0]);
  await b.waitForFunction(() => !document.querySelector('#boxes .box .badge'), { timeout: T });
  await waitText(a, '.box-head .members', 'Bob');
  await typeAndSubmit(b, '#message', plaintexts[1]);
  await waitText(a, '.msg:not(.mine) .text', plaintexts[1]);

  // Alice edits her message; bob sees the new text live, marked edited.
  await clickIn(a, '.msg.mine', plaintexts[0], '[data-act=edit]');
  await a.waitForSelector('#edit-text', { timeout: T });
  await a.$eval('#edit-text', (e) => (/** @type {HTMLInputElement} */ (e).value = ''));
  await typeAndSubmit(a, '#edit-text', plaintexts[2]);
  await waitText(b, '.msg .text', plaintexts[2]);
  await waitText(b, '.msg .meta .edited', 'edited');

  // Bob deletes his answer; alice sees it go live.
  await clickIn(b, '.msg.mine', plaintexts[1], '[data-act=delete]');
  await waitText(a, '.msg.deleted .text', 'Message deleted');
  await a.waitForFunction((t) => !document.body.textContent?.includes(t), { timeout: T }, plaintexts[1]);

  // Realtime dies while alice writes: both sockets come back from their last history position
  // (?since=) and bob sees each message exactly once.
  const offline = ['Sent while the line was down (1)', 'Sent while the line was down (2)', 'Sent while the line was down (3)'];
  plaintexts.push(...offline);
  await stack.kill('realtime');
  await b.waitForSelector('#conn:not(.open)', { timeout: T });
  for (const t of offline) {
    await typeAndSubmit(a, '#message', t);
    await waitText(a, '.msg.mine .text', t);
  }
  await stack.restart('realtime');
  await b.waitForSelector('#conn.open', { timeout: T });
  for (const t of offline) await waitText(b, '.msg .text', t);
  await new Promise((r) => setTimeout(r, 500));
  const shown = await b.$$eval('.msg .text', (els, ts) => ts.map((t) => els.filter((e) => e.textContent === t).length), offline);
  assert.deepEqual(shown, [1, 1, 1], 'each message once on bob\'s side');

  // Alice makes an invitation link: it opens the host page, the share only in the fragment.
  await a.click('#invite');
  await a.waitForSelector('#invite-link', { timeout: T });
  const link = await a.$eval('#invite-link', (e) => /** @type {HTMLInputElement} */ (e).value);
  const url = new URL(link);
  assert.equal(url.origin, demo.hostUrl);
  assert.equal(url.search, '');
  const share = new URLSearchParams(url.hash.slice(1)).get('share') ?? '';
  assert.match(share, /^[A-Za-z0-9_-]{43}$/);
  secrets.add(share);

  // Carol opens the link, signs in to the host app, and joins from the miniapp.
  const carol = await open(link);
  await carol.page.waitForSelector('button[data-user=carol]', { timeout: T });
  await carol.page.click('button[data-user=carol]');
  const c = await miniapp(carol.page);
  await waitText(c, '.invitation h1', 'Alice Martin - Bob');
  mkdirSync(ARTIFACTS, { recursive: true });
  await carol.page.screenshot({ path: join(ARTIFACTS, 'carol-invitation.png') });
  assert.ok(!carol.page.url().includes('share='), 'the host page dropped the fragment from its address');
  assert.ok(!c.url().includes('share='), 'the miniapp dropped the fragment from its address');
  await c.click('#join');
  await waitText(c, '.msg .text', plaintexts[2]);
  await waitText(a, '.sys', 'Carol Smith joined');
  await typeAndSubmit(c, '#message', plaintexts[3]);
  await waitText(a, '.msg .text', plaintexts[3]);
  await waitText(b, '.msg .text', plaintexts[3]);
  await waitText(a, '#boxes .box .preview', plaintexts[3]);
  for (const f of [a, b, c]) for (const s of await deviceSecrets(f)) secrets.add(s);

  // Bob leaves; alice's miniapp rotates the key share (a new invitation share on her device).
  await b.click('#leave');
  await waitText(b, '.placeholder', 'You left the box.');
  await waitText(a, '.sys', 'Bob left');
  await b.waitForFunction(() => !document.querySelector('#boxes .box'), { timeout: T });
  await waitText(a, '.box-head .members', 'Carol');
  await a.waitForFunction(
    (old) =>
      new Promise((ok) => {
        const req = indexedDB.open('boxes-keys', 1);
        req.onsuccess = () => {
          const all = req.result.transaction('keys').objectStore('keys').getAll();
          all.onsuccess = () => ok(all.result.some((v) => typeof v === 'string' && v.includes('invitation_share') && !v.includes(old)));
        };
      }),
    { timeout: T },
    share,
  );
  for (const f of [a, c]) for (const s of await deviceSecrets(f)) secrets.add(s);
  // The old link stops working, so alice's page stops showing it; a new one works.
  await a.waitForFunction(() => !document.getElementById('invite-link'), { timeout: T });
  await a.click('#invite');
  await a.waitForSelector('#invite-link', { timeout: T });
  const newLink = await a.$eval('#invite-link', (e) => /** @type {HTMLInputElement} */ (e).value);
  assert.notEqual(newLink, link);
  secrets.add(new URLSearchParams(new URL(newLink).hash.slice(1)).get('share') ?? '');

  await alice.page.screenshot({ path: join(ARTIFACTS, 'alice-conversation.png') });
  await carol.page.screenshot({ path: join(ARTIFACTS, 'carol-conversation.png') });

  // Alice deletes the box; carol sees it go.
  await a.click('#delete-box');
  await a.click('#confirm-delete');
  await waitText(a, '.placeholder', 'The box was deleted.');
  await waitText(c, '.placeholder', 'This box was deleted by its admin.');
  await c.waitForFunction(() => !document.querySelector('#boxes .box'), { timeout: T });
  await alice.page.screenshot({ path: join(ARTIFACTS, 'alice-end.png') });

  assert.deepEqual(pageErrors, []);
  for (const f of [a, b, c]) assert.equal(await f.$eval('#toast', (e) => e.textContent), '', 'no error was shown');
  assert.ok(
    [...outside].every((h) => /(^|\.)(boxo\.io|appboxo\.com)$/.test(h)),
    `unexpected hosts: ${[...outside].join(', ')}`,
  );

  // The trust model (SPEC §1.4): what the services saw holds none of it.
  // Three identity keys, the box secret key, the first and the rotated invitation share.
  assert.ok(secrets.size >= 6, `collected the device secrets (${secrets.size})`);
  const places = {
    database: stack.dumpDatabase(),
    redis: stack.redisTraffic(),
    logs: stack.logs(),
    'demo server requests': demoRequests.join('\n'),
  };
  assert.ok(places.database.includes(bobId), 'the dump holds the data');
  assert.ok(places.redis.includes('PUBLISH'), 'redis traffic was captured');
  assert.ok(places.logs.length > 0, 'logs were captured');
  for (const [where, text] of Object.entries(places)) {
    for (const p of plaintexts) assert.ok(!text.includes(p), `a plaintext is in the ${where}`);
    for (const p of ['door code', 'blue cafe', 'nobody else']) assert.ok(!text.includes(p), `a plaintext fragment is in the ${where}`);
    for (const s of secrets) for (const form of encodings(s)) assert.ok(!text.includes(form), `a device secret is in the ${where}`);
  }

  for (const p of [alice, bob, carol]) await p.ctx.close();
}

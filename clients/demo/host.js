// The host page: a stand-in for a host app's web front end. It signs a test user in (its own
// concern), then embeds the miniapp through the real @appboxo/web-sdk, which answers the
// miniapp's AppBoxoWebAppLogin by exchanging a one-time auth code at auth-bridge's
// POST /api/v1/authorize/. An invitation fragment in this page's URL is handed to the miniapp's.
import { AppboxoWebSDK } from '@appboxo/web-sdk';

/** @typedef {{authUrl: string, appUrl: string, hostUrl: string, clientId: string, appId: string, users: string[]}} Config */

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** @returns {Promise<Config>} */
async function loadConfig() {
  const r = await fetch('/config.json');
  return r.json();
}

/** @param {Config} cfg */
function showPicker(cfg) {
  $('pick').hidden = false;
  for (const user of cfg.users) {
    const b = document.createElement('button');
    b.textContent = user;
    b.dataset.user = user;
    b.onclick = () => {
      const url = new URL(location.href);
      url.searchParams.set('user', user);
      history.replaceState(null, '', url);
      $('pick').hidden = true;
      mount(cfg, user);
    };
    $('users').append(b);
  }
}

/** @param {Config} cfg @param {string} user */
async function mount(cfg, user) {
  const who = $('who');
  who.textContent = `Signed in as ${user}`;
  const out = document.createElement('a');
  out.href = '/';
  out.textContent = 'Switch user';
  who.append(out);

  const sdk = new AppboxoWebSDK({
    clientId: cfg.clientId,
    appId: cfg.appId,
    userId: user,
    baseUrl: `${cfg.authUrl}/api/v1`,
    allowedOrigins: [cfg.appUrl],
    onGetAuthCode: async () => {
      const r = await fetch('/auth-code', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ user }),
      });
      if (!r.ok) throw new Error(`auth code request failed (${r.status})`);
      return (await r.json()).auth_code;
    },
  });
  const app = new URL('/demo/', cfg.appUrl);
  // Links the miniapp makes open this page; the fragment (an invitation) moves into the iframe
  // and leaves this page's address, so a reload does not replay it.
  app.searchParams.set('link_base', `${location.origin}/`);
  app.hash = location.hash;
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  await sdk.mount({ container: $('miniapp'), url: app.toString() });
}

const cfg = await loadConfig();
const user = new URLSearchParams(location.search).get('user');
if (user && cfg.users.includes(user)) mount(cfg, user);
else showPicker(cfg);

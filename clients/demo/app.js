// The demo miniapp: a user of the SDK's public API only. Inside a host page it logs in through the
// Boxo JS SDK; opened on its own it uses the development login. Everything it shows is decrypted
// here; the services only ever see ciphertext.
import { BoxesClient, IndexedDBKeyStore, ApiError, foldEvent } from '../js/src/index.js';

/** @typedef {import('../js/src/fold.js').DecryptedEvent} DecryptedEvent */
/** @typedef {{authUrl: string, boxesUrl: string, realtimeUrl: string, clientId: string, appId: string, users: string[]}} Config */

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** A DOM element; text always goes in as text nodes, never as HTML.
 * @param {string} tag @param {Record<string, any>} [props] @param {...any} kids
 * @returns {HTMLElement} */
function h(tag, props = {}, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') /** @type {HTMLInputElement} */ (el).value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  el.append(...kids.flat().filter((x) => x != null && x !== false));
  return el;
}

/** @type {Config} */
const cfg = await (await fetch('/config.json')).json();
const linkBase = new URLSearchParams(location.search).get('link_base') ?? new URL('/demo/', location.href).toString();
// An invitation arrives in the fragment; keep it in memory only and take it out of the address.
const invitation = /share=/.test(location.hash) ? location.hash : null;
if (invitation) history.replaceState(null, '', location.pathname + location.search);

const client = new BoxesClient({
  authUrl: cfg.authUrl,
  boxesUrl: cfg.boxesUrl,
  realtimeUrl: cfg.realtimeUrl,
  store: new IndexedDBKeyStore(),
});

/** What the page shows. */
const state = {
  /** @type {any[]} */ boxes: [],
  /** @type {Map<string, string>} last-event previews, decrypted */ previews: new Map(),
  /** @type {string | null} */ current: null,
  /** @type {Promise<void>} the open box's first load */ opening: Promise.resolve(),
  /** @type {string | null} a box that left the list while open */ gone: null,
  /** @type {DecryptedEvent[]} */ timeline: [],
  /** @type {any[]} */ members: [],
  /** @type {string | null} */ editing: null,
  /** @type {string | null} */ inviteLink: null,
  confirmDelete: false,
  /** @type {{title: string, creator: string} | null} */ invitation: null,
  /** @type {string | null} */ notice: null,
  /** @type {{name: string, loaded: number, total: number} | null} the file being sent */ upload: null,
  /** @type {Map<string, {loaded: number, total: number} | {url: string}>} per file message: its download, then its decrypted copy */
  downloads: new Map(),
  /** @type {import('../js/src/client.js').SavedFile[]} */ saved: [],
  /** @type {{quota: number, used: number} | null} */ quota: null,
};

// ---- feedback ------------------------------------------------------------------------------

/** @type {ReturnType<typeof setTimeout> | undefined} */
let toastTimer;
/** Shows an error to the person; ApiErrors by their §4 code and details, nothing secret. @param {unknown} e */
function toast(e) {
  let text = e instanceof Error ? e.message : String(e);
  if (e instanceof ApiError) {
    const details = Object.entries(e.details ?? {}).map(([k, v]) => `${k}: ${v}`).join(', ');
    text = `${e.code}${details ? ` (${details})` : ''}${e.message ? ` – ${e.message}` : ''}`;
  }
  const t = $('toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), 6000);
}

/** Copies text. An iframe without the `clipboard-write` permission has no Clipboard API, so
 * the older selection copy is the fallback. @param {string} text */
async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = h('textarea', { class: 'offscreen', readonly: true }, text);
    document.body.append(area);
    /** @type {HTMLTextAreaElement} */ (area).select();
    const done = document.execCommand('copy');
    area.remove();
    if (!done) throw new Error('Copying is blocked here: select the text and copy it.');
  }
  toast('Copied.');
}

/** Runs a user action; reports its failure instead of losing it. @param {() => Promise<unknown>} f */
const act = (f) => () => void f().catch(toast);

// ---- describing events ---------------------------------------------------------------------

/** @param {any} who */
const nameOf = (who) => (who?.id === client.session?.identityId ? 'You' : (who?.display_name || 'Someone'));

/** A line for the timeline or a preview; null for events a person need not see. @param {DecryptedEvent} e */
function describe(e) {
  switch (e.type) {
    case 'msg.text':
      if (e.deleted) return 'Message deleted';
      if (e.undecryptable) return 'Cannot decrypt this message on this device';
      return e.text ?? '';
    case 'msg.file':
      if (e.deleted) return 'File deleted';
      if (e.undecryptable || !e.file) return 'Cannot decrypt this file on this device';
      return `${e.file.name} (${fmtSize(e.file.size)})`;
    case 'create':
      return `${nameOf(e.sender)} created the box`;
    case 'member.join':
      return `${nameOf(e.sender)} joined`;
    case 'member.leave':
      return `${nameOf(e.sender)} left`;
    case 'member.kick':
      return `${nameOf(e.sender)} was removed`;
    case 'state.access_mode':
      return e.content?.value === 'public' ? `${nameOf(e.sender)} turned on invitation links` : null;
    default:
      return null;
  }
}

/** @param {number} n bytes */
function fmtSize(n) {
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let u = 0;
  for (; v >= 1024 && u < units.length - 1; u++) v /= 1024;
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** @param {number} loaded @param {number} total */
const percent = (loaded, total) => `${total > 0 ? Math.floor((100 * loaded) / total) : 100} %`;

/** @param {string} iso */
const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

// ---- box list ------------------------------------------------------------------------------

async function loadBoxes() {
  const boxes = await client.listBoxes();
  for (const b of boxes) {
    if (!b.last_event) continue;
    const e = await client.decryptEvent(b.last_event);
    const line = describe(e);
    // Events a person need not see (a key-share rotation) leave the preview as it was.
    const msg = (e.type === 'msg.text' || e.type === 'msg.file') && !e.deleted;
    if (line !== null) state.previews.set(b.id, msg ? `${nameOf(e.sender)}: ${line}` : line);
  }
  state.boxes = boxes;
  if (state.current && !boxes.some((/** @type {any} */ b) => b.id === state.current)) {
    state.gone = state.current;
    closeBox('You are no longer in this box.');
  }
  renderBoxes();
}

/** @type {ReturnType<typeof setTimeout> | undefined} */
let boxesTimer;
/** Many events can arrive at once; one list reload covers them. */
function loadBoxesSoon() {
  clearTimeout(boxesTimer);
  boxesTimer = setTimeout(act(loadBoxes), 150);
}

function renderBoxes() {
  const list = $('boxes');
  if (!state.boxes.length) {
    list.replaceChildren(h('li', { class: 'empty' }, 'No boxes yet. Contact someone or create one.'));
    return;
  }
  list.replaceChildren(
    ...state.boxes.map((b) => {
      const unread = b.id === state.current ? 0 : b.events_count;
      return h(
        'li',
        { class: `box${b.id === state.current ? ' active' : ''}`, dataset: { id: b.id }, onclick: act(() => openBox(b.id)) },
        h('div', { class: 'box-line' }, h('span', { class: 'title' }, b.title), unread > 0 && h('span', { class: 'badge' }, String(unread))),
        h('div', { class: 'preview' }, state.previews.get(b.id) ?? ''),
      );
    }),
  );
}

// ---- one box -------------------------------------------------------------------------------

/** @param {string} boxId */
async function openBox(boxId) {
  Object.assign(state, { current: boxId, timeline: [], members: [], editing: null, inviteLink: null, confirmDelete: false, notice: null, invitation: null });
  renderBoxes();
  renderMain();
  const load = Promise.all([client.timeline(boxId), client.members(boxId)]).then(([timeline, members]) => {
    if (state.current !== boxId) return;
    state.timeline = timeline;
    state.members = members;
    renderMain();
  });
  // Live events wait for this load; its failure is reported once, below.
  state.opening = load.catch(() => {});
  await load;
  await markRead();
}

/** A live event of any box: the open box folds it in (after its first load, which it may
 * overlap), the list reloads. @param {DecryptedEvent} e */
async function onEvent(e) {
  const me = client.session?.identityId;
  const mine = e.sender?.id === me;
  loadBoxesSoon();
  if (e.box_id !== state.current) return;
  // Leaving closes the box in leave(); the echo of one's own leave needs nothing more.
  if (mine && (e.type === 'member.leave' || e.type === 'member.kick')) return;
  await state.opening;
  if (e.box_id !== state.current) return;
  if (e.type === 'state.key_share' && state.inviteLink) {
    // A new split of the box key: the link shown holds the old share, which no longer works.
    state.inviteLink = null;
    renderMain();
  }
  applyEvent(e);
  if (e.type.startsWith('member.')) {
    state.members = await client.members(e.box_id);
    if (e.box_id === state.current) renderMain();
  }
  if (!mine && e.type.startsWith('msg.')) ackSoon(e.box_id);
}

/** @type {ReturnType<typeof setTimeout> | undefined} */
let ackTimer;
/** Marks the open box read once a burst of events (a catch-up after a reconnection) is in.
 * @param {string} boxId */
function ackSoon(boxId) {
  clearTimeout(ackTimer);
  ackTimer = setTimeout(act(() => client.ack(boxId)), 150);
}

/** The socket's state, on the dot next to one's name.
 * @param {'connecting' | 'open' | 'closed'} s */
function showConnection(s) {
  const dot = $('conn');
  dot.className = `dot ${s}`;
  dot.title = { open: 'Live', connecting: 'Reconnecting…', closed: 'Offline, reconnecting soon' }[s];
}

/** @param {string | null} notice */
function closeBox(notice) {
  Object.assign(state, { current: null, timeline: [], members: [], editing: null, inviteLink: null, notice });
  renderMain();
}

async function markRead() {
  const box = state.boxes.find((b) => b.id === state.current);
  if (state.current && (!box || box.events_count > 0)) await client.ack(state.current);
}

const currentBox = () => state.boxes.find((b) => b.id === state.current);

function renderMain() {
  const main = $('main');
  if (state.invitation) return main.replaceChildren(renderInvitation(state.invitation));
  const box = currentBox();
  if (!state.current || !box) {
    return main.replaceChildren(
      h('div', { class: 'placeholder' }, state.notice ?? 'Choose a box, or contact someone with their id.'),
    );
  }
  const me = client.session?.identityId;
  const isAdmin = box.creator?.id === me;
  const parts = [
    h(
      'header',
      { class: 'box-head' },
      h('div', {}, h('h1', {}, box.title), h('div', { class: 'members' }, state.members.map((m) => m.display_name).join(', '))),
      h(
        'div',
        { class: 'actions' },
        h('button', { type: 'button', id: 'invite', onclick: act(makeLink) }, 'Invite link'),
        isAdmin
          ? h('button', { type: 'button', id: 'delete-box', class: 'danger', onclick: () => ((state.confirmDelete = true), renderMain()) }, 'Delete box')
          : h('button', { type: 'button', id: 'leave', onclick: act(leave) }, 'Leave'),
      ),
    ),
    state.confirmDelete &&
      h(
        'div',
        { class: 'banner warn' },
        'Delete this box and its messages for everyone?',
        h('button', { type: 'button', id: 'confirm-delete', class: 'danger', onclick: act(deleteBox) }, 'Delete'),
        h('button', { type: 'button', onclick: () => ((state.confirmDelete = false), renderMain()) }, 'Cancel'),
      ),
    state.inviteLink &&
      h(
        'div',
        { class: 'banner' },
        'Anyone with this link can join:',
        h('input', { id: 'invite-link', readonly: true, value: state.inviteLink, onfocus: (/** @type {Event} */ ev) => /** @type {HTMLInputElement} */ (ev.target).select() }),
        h('button', { type: 'button', onclick: act(() => copy(state.inviteLink ?? '')) }, 'Copy'),
      ),
    h('ol', { id: 'timeline', class: 'timeline' }),
    h('div', { id: 'upload', class: 'upload', hidden: true }),
    h(
      'form',
      { id: 'composer', class: 'composer', onsubmit: (/** @type {Event} */ ev) => (ev.preventDefault(), act(send)()) },
      h('input', { id: 'file-input', type: 'file', hidden: true, onchange: act(attach) }),
      h(
        'button',
        { type: 'button', id: 'attach', class: 'attach', title: 'Send a file, encrypted', onclick: () => $('file-input').click() },
        'Attach',
      ),
      h('input', { id: 'message', placeholder: 'Write a message', autocomplete: 'off', maxlength: 4000 }),
      h('button', { type: 'submit' }, 'Send'),
    ),
  ];
  main.replaceChildren(...parts.filter((p) => p instanceof Node));
  renderTimeline();
  renderUpload();
  /** @type {HTMLInputElement} */ ($('message')).focus();
}

function renderTimeline() {
  const list = document.getElementById('timeline');
  if (!list) return;
  const me = client.session?.identityId;
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.replaceChildren(
    ...state.timeline.flatMap((e) => {
      const line = describe(e);
      if (line === null) return [];
      if (e.type === 'msg.file') return [renderFile(e, e.sender?.id === me, line)];
      if (e.type !== 'msg.text') return [h('li', { class: 'sys', dataset: { id: e.id, type: e.type } }, line)];
      const mine = e.sender?.id === me;
      const editing = state.editing === e.id;
      return [
        h(
          'li',
          { class: `msg${mine ? ' mine' : ''}${e.deleted ? ' deleted' : ''}`, dataset: { id: e.id } },
          !mine && h('div', { class: 'sender' }, e.sender?.display_name ?? ''),
          editing
            ? h(
                'form',
                { class: 'edit', onsubmit: (/** @type {Event} */ ev) => (ev.preventDefault(), act(() => saveEdit(e.id))()) },
                h('input', { id: 'edit-text', value: e.text ?? '', autocomplete: 'off' }),
                h('button', { type: 'submit' }, 'Save'),
                h('button', { type: 'button', onclick: () => ((state.editing = null), renderTimeline()) }, 'Cancel'),
              )
            : h('div', { class: 'text' }, line),
          h(
            'div',
            { class: 'meta' },
            clock(e.server_event_created_at),
            e.edited_at && !e.deleted && h('span', { class: 'edited' }, ' · edited'),
            mine &&
              !e.deleted &&
              !editing &&
              h(
                'span',
                { class: 'tools' },
                h('button', { type: 'button', class: 'link', dataset: { act: 'edit' }, onclick: () => ((state.editing = e.id), renderTimeline()) }, 'Edit'),
                h('button', { type: 'button', class: 'link', dataset: { act: 'delete' }, onclick: act(() => removeMessage(e.id)) }, 'Delete'),
              ),
          ),
        ),
      ];
    }),
  );
  if (state.editing) /** @type {HTMLInputElement | null} */ (document.getElementById('edit-text'))?.focus();
  if (atBottom || list.scrollTop === 0) list.scrollTop = list.scrollHeight;
}

/** A file message: its name and size, a button that downloads and decrypts it, then a link that
 * saves the decrypted copy; "Keep" saves it among one's files.
 * @param {DecryptedEvent} e @param {boolean} mine @param {string} line */
function renderFile(e, mine, line) {
  const file = !e.deleted && !e.undecryptable ? e.file : null;
  const dl = state.downloads.get(e.id);
  return h(
    'li',
    { class: `msg file${mine ? ' mine' : ''}${e.deleted ? ' deleted' : ''}`, dataset: { id: e.id, type: e.type } },
    !mine && h('div', { class: 'sender' }, e.sender?.display_name ?? ''),
    h('div', { class: 'text' }, file && h('span', { class: 'file-icon' }), file ? file.name : line),
    file &&
      h(
        'div',
        { class: 'file-line' },
        h('span', { class: 'size' }, fmtSize(file.size)),
        dl && 'url' in dl
          ? h('a', { class: 'save', href: dl.url, download: file.name }, 'Save to device')
          : dl
            ? h('span', { class: 'progress' }, h('progress', { max: dl.total, value: dl.loaded }), ` ${percent(dl.loaded, dl.total)}`)
            : h('button', { type: 'button', class: 'link', dataset: { act: 'download' }, onclick: act(() => download(e)) }, 'Download'),
        state.saved.some((s) => s.encrypted_file_id === file.id)
          ? h('span', { class: 'kept' }, 'Kept')
          : h('button', { type: 'button', class: 'link', dataset: { act: 'keep' }, onclick: act(() => keep(e)) }, 'Keep'),
      ),
    h(
      'div',
      { class: 'meta' },
      clock(e.server_event_created_at),
      mine &&
        !e.deleted &&
        h('span', { class: 'tools' }, h('button', { type: 'button', class: 'link', dataset: { act: 'delete' }, onclick: act(() => removeMessage(e.id)) }, 'Delete')),
    ),
  );
}

/** The bar under the timeline while a file is sent. */
function renderUpload() {
  const box = document.getElementById('upload');
  if (!box) return;
  const u = state.upload;
  box.hidden = !u;
  if (!u) return box.replaceChildren();
  box.replaceChildren(
    h('span', { class: 'name' }, `Sending ${u.name}`),
    h('progress', { id: 'upload-progress', max: u.total || 1, value: u.loaded }),
    h('span', { class: 'pct' }, percent(u.loaded, u.total)),
  );
}

/** @param {DecryptedEvent} e */
function applyEvent(e) {
  state.timeline = foldEvent(state.timeline, e);
  renderTimeline();
}

// ---- actions -------------------------------------------------------------------------------

async function send() {
  const input = /** @type {HTMLInputElement} */ ($('message'));
  const text = input.value.trim();
  if (!text || !state.current) return;
  input.value = '';
  try {
    applyEvent(await client.send(state.current, text));
  } catch (e) {
    input.value = text;
    throw e;
  }
}

/** @param {string} id */
async function saveEdit(id) {
  const text = /** @type {HTMLInputElement} */ ($('edit-text')).value.trim();
  if (!text || !state.current) return;
  state.editing = null;
  applyEvent(await client.edit(state.current, id, text));
}

/** @param {string} id */
async function removeMessage(id) {
  if (state.current) applyEvent(await client.deleteMessage(state.current, id));
}

/** Encrypts and sends the chosen file to the open box. */
async function attach() {
  const input = /** @type {HTMLInputElement} */ ($('file-input'));
  const file = input.files?.[0];
  input.value = '';
  const boxId = state.current;
  if (!file || !boxId) return;
  state.upload = { name: file.name, loaded: 0, total: file.size };
  renderUpload();
  try {
    const e = await client.uploadFile(boxId, file, {
      onProgress: (p) => {
        state.upload = { name: file.name, ...p };
        renderUpload();
      },
    });
    if (state.current === boxId) applyEvent(e);
  } finally {
    state.upload = null;
    renderUpload();
  }
  await loadQuota();
}

/** Downloads and decrypts a file; the decrypted copy becomes a link that saves it.
 * @param {DecryptedEvent} e */
async function download(e) {
  state.downloads.set(e.id, { loaded: 0, total: 1 });
  renderTimeline();
  let shown = '';
  try {
    const file = await client.openFile(e, {
      onProgress: (p) => {
        const pct = percent(p.loaded, p.total);
        state.downloads.set(e.id, p);
        // One repaint per percent, not per chunk.
        if (pct !== shown) ((shown = pct), renderTimeline());
      },
    });
    state.downloads.set(e.id, { url: blobUrl(file) });
  } catch (err) {
    state.downloads.delete(e.id);
    throw err;
  } finally {
    renderTimeline();
  }
  document.querySelector(`li[data-id="${e.id}"] a.save`)?.dispatchEvent(new MouseEvent('click'));
}

/** @param {{bytes: Uint8Array, type: string}} file */
const blobUrl = (file) => URL.createObjectURL(new Blob([/** @type {Uint8Array<ArrayBuffer>} */ (file.bytes)], { type: file.type || 'application/octet-stream' }));

/** Keeps a file among one's saved files (it stays after leaving the box). @param {DecryptedEvent} e */
async function keep(e) {
  await client.saveFile(e);
  toast(`Kept ${e.file?.name ?? 'the file'} in your saved files.`);
  await loadSaved();
}

async function loadSaved() {
  state.saved = await client.savedFiles();
  renderSaved();
  renderTimeline();
  await loadQuota();
}

async function loadQuota() {
  state.quota = await client.storageQuota();
  renderSaved();
}

function renderSaved() {
  const q = state.quota;
  $('quota').textContent = q ? `${fmtSize(q.used)} of ${fmtSize(q.quota)} used` : '';
  const list = $('saved-files');
  if (!state.saved.length) return list.replaceChildren(h('li', { class: 'empty' }, 'Files you keep show here.'));
  list.replaceChildren(
    ...state.saved.map((s) => {
      const dl = state.downloads.get(s.id);
      return h(
        'li',
        { class: 'saved', dataset: { id: s.id } },
        h('span', { class: 'name', title: s.file?.name }, s.file ? s.file.name : 'Cannot decrypt on this device'),
        s.file && h('span', { class: 'size' }, fmtSize(s.file.size)),
        s.file &&
          (dl && 'url' in dl
            ? h('a', { class: 'save', href: dl.url, download: s.file.name }, 'Save')
            : h('button', { type: 'button', class: 'link', dataset: { act: 'open' }, onclick: act(() => openSaved(s)) }, dl ? percent(dl.loaded, dl.total) : 'Open')),
        h('button', { type: 'button', class: 'link', dataset: { act: 'remove' }, onclick: act(() => removeSaved(s)) }, 'Remove'),
      );
    }),
  );
}

/** @param {import('../js/src/client.js').SavedFile} s */
async function openSaved(s) {
  state.downloads.set(s.id, { loaded: 0, total: 1 });
  renderSaved();
  try {
    const file = await client.openSavedFile(s, { onProgress: (p) => (state.downloads.set(s.id, p), renderSaved()) });
    state.downloads.set(s.id, { url: blobUrl(file) });
  } catch (err) {
    state.downloads.delete(s.id);
    throw err;
  } finally {
    renderSaved();
  }
}

/** @param {import('../js/src/client.js').SavedFile} s */
async function removeSaved(s) {
  await client.deleteSavedFile(s);
  const dl = state.downloads.get(s.id);
  if (dl && 'url' in dl) URL.revokeObjectURL(dl.url);
  state.downloads.delete(s.id);
  await loadSaved();
}

async function makeLink() {
  if (!state.current) return;
  state.inviteLink = await client.invitationLink(state.current, linkBase);
  renderMain();
}

async function leave() {
  if (!state.current) return;
  await client.leave(state.current);
  closeBox('You left the box.');
  await loadBoxes();
}

async function deleteBox() {
  if (!state.current) return;
  await client.deleteBox(state.current);
  closeBox('The box was deleted.');
  await loadBoxes();
}

/** @param {string} identityId */
async function contact(identityId) {
  const profile = await client.api('GET', `/identities/${encodeURIComponent(identityId)}/profile`);
  const title = `${client.me.display_name} - ${profile.display_name}`.slice(0, 50);
  const box = await client.contact(identityId, title);
  await loadBoxes();
  await openBox(box.id);
}

/** @param {string} title */
async function createBox(title) {
  const box = await client.createBox(title);
  await loadBoxes();
  await openBox(box.id);
}

/** @param {{title: string, creator: string}} inv */
function renderInvitation(inv) {
  return h(
    'div',
    { class: 'invitation card' },
    h('h1', {}, inv.title),
    h('p', {}, `${inv.creator} invites you to this box.`),
    h(
      'div',
      { class: 'row' },
      h('button', { type: 'button', id: 'join', class: 'primary', onclick: act(join) }, 'Join'),
      h('button', { type: 'button', onclick: () => ((state.invitation = null), renderMain()) }, 'Not now'),
    ),
  );
}

async function join() {
  if (!invitation) return;
  const box = await client.joinByLink(invitation);
  state.invitation = null;
  await loadBoxes();
  await openBox(box.id);
}

// ---- start ---------------------------------------------------------------------------------

/** @template T @param {Promise<T>} p @param {number} ms @param {string} what @returns {Promise<T>} */
function within(p, ms, what) {
  return Promise.race([p, new Promise((_, ko) => setTimeout(() => ko(new Error(what)), ms))]);
}

async function signIn() {
  if (window.parent !== window) {
    const { default: appboxo } = await import('@appboxo/js-sdk');
    await within(client.loginWithBoxo(appboxo), 20_000, 'The host app did not answer the login request.');
    return;
  }
  // Outside a host page: the development login with the reference host app's static codes.
  $('loading').hidden = true;
  $('login').hidden = false;
  const user = await new Promise((resolve) => {
    $('login-users').replaceChildren(...cfg.users.map((u) => h('button', { type: 'button', dataset: { user: u }, onclick: () => resolve(u) }, u)));
  });
  $('login').hidden = true;
  await client.login({ authCode: `code-${user}`, appId: cfg.appId, clientId: cfg.clientId });
}

async function main() {
  await signIn();
  $('loading').hidden = true;
  $('app').hidden = false;
  $('me-name').textContent = client.me.display_name;
  $('my-id').textContent = client.identityId;
  $('copy-id').onclick = act(() => copy(client.identityId));
  $('contact-form').onsubmit = (ev) => {
    ev.preventDefault();
    const input = /** @type {HTMLInputElement} */ ($('contact-id'));
    act(async () => (await contact(input.value.trim()), (input.value = '')))();
  };
  $('create-form').onsubmit = (ev) => {
    ev.preventDefault();
    const input = /** @type {HTMLInputElement} */ ($('create-title'));
    act(async () => (await createBox(input.value.trim()), (input.value = '')))();
  };
  renderMain();

  client.connect({
    onEvent: (e) => act(() => onEvent(e))(),
    onBoxDelete: (o) => {
      if (o.id === state.current || o.id === state.gone) closeBox('This box was deleted by its admin.');
      loadBoxesSoon();
    },
    onAck: loadBoxesSoon,
    onNotification: loadBoxesSoon,
    onBoxes: loadBoxesSoon,
    // After a reconnection the SDK replays or catches up what was missed through onEvent, each
    // event once; a catch-up (the socket's history did not cover the gap) also refreshes the list.
    onResync: loadBoxesSoon,
    onState: showConnection,
    onError: toast,
  });
  await loadBoxes();
  await loadSaved();

  if (invitation) {
    try {
      const preview = await client.previewLink(invitation);
      state.invitation = { title: preview.title, creator: preview.creator?.display_name ?? 'Someone' };
    } catch (e) {
      state.notice = e instanceof ApiError && e.status === 404 ? 'This invitation link is no longer valid.' : null;
      if (!state.notice) throw e;
    }
    renderMain();
  }
}

main().catch((e) => {
  $('loading').hidden = true;
  toast(e);
});

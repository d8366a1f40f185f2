import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, statSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiError, errorFromResponse, foldEvents, backoffDelay, FileKeyStore, MemoryKeyStore } from '../../src/index.js';

test('error mapping keeps the §4 code, origin and details', () => {
  const e = errorFromResponse(
    403,
    '{"code":"forbidden","origin":"not_defined","desc":"","details":{"reason":"not_member"}}',
  );
  assert.ok(e instanceof ApiError);
  assert.equal(e.status, 403);
  assert.equal(e.code, 'forbidden');
  assert.equal(e.origin, 'not_defined');
  assert.equal(e.reason, 'not_member');
  const g = errorFromResponse(502, '<html>bad gateway</html>');
  assert.deepEqual([g.code, g.origin, g.details], ['bad_gateway', 'not_defined', {}]);
  const h = errorFromResponse(418, '');
  assert.equal(h.code, 'bad_request');
  const d = errorFromResponse(400, '{"code":"bad_request","origin":"body","details":{"box.title":"invalid"}}');
  assert.deepEqual(d.details, { 'box.title': 'invalid' });
});

/** @param {string} id @param {string} type @param {any} [extra] */
const ev = (id, type, extra = {}) => ({
  id,
  type,
  box_id: 'b',
  server_event_created_at: `2024-01-01T00:00:0${id.length}Z`,
  sender: { id: 'alice', display_name: 'Alice' },
  content: null,
  referrer_id: null,
  text: null,
  ...extra,
});

test('folding applies edits and deletions and ignores duplicates', () => {
  const t = foldEvents(
    [],
    [
      ev('1', 'create'),
      ev('2', 'msg.text', { text: 'hi' }),
      ev('3', 'msg.text', { text: 'there' }),
      ev('4', 'msg.edit', { referrer_id: '2', text: 'hi!', content: { new_encrypted: 'x', new_public_key: 'k' } }),
      ev('5', 'msg.delete', { referrer_id: '3' }),
      ev('2', 'msg.text', { text: 'hi' }),
      ev('6', 'msg.edit', { referrer_id: '3', text: 'resurrected?' }),
    ],
  );
  assert.deepEqual(
    t.map((m) => [m.id, m.text, !!m.deleted]),
    [
      ['1', null, false],
      ['2', 'hi!', false],
      ['3', null, true],
    ],
  );
  assert.equal(t[1].edited_at, ev('4', 'x').server_event_created_at);
  assert.deepEqual(t[1].content, { encrypted: 'x', public_key: 'k', last_edited_at: t[1].edited_at });
  assert.ok(t[2].content.deleted);
});

test('backoff grows exponentially, is capped, and jitters between half and all', () => {
  assert.equal(backoffDelay(0, 500, 30000, () => 0), 250);
  assert.equal(backoffDelay(0, 500, 30000, () => 1), 500);
  assert.equal(backoffDelay(3, 500, 30000, () => 1), 4000);
  assert.equal(backoffDelay(40, 500, 30000, () => 1), 30000);
  assert.equal(backoffDelay(40, 500, 30000, () => 0), 15000);
});

test('key stores keep, return and forget secrets; the file store is private to its owner', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'boxes-keys-'));
  try {
    for (const store of [new MemoryKeyStore(), new FileKeyStore(join(dir, 'keys.json'))]) {
      assert.equal(await store.get('a'), undefined);
      await Promise.all([store.set('a', '1'), store.set('b', '2')]);
      assert.equal(await store.get('a'), '1');
      assert.equal(await store.get('b'), '2');
      await store.delete('a');
      assert.equal(await store.get('a'), undefined);
    }
    assert.equal(statSync(join(dir, 'keys.json')).mode & 0o777, 0o600);
    assert.equal(await new FileKeyStore(join(dir, 'keys.json')).get('b'), '2');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

import { createHash, randomBytes } from 'node:crypto';
import { startStack } from './test/harness.js';
import { BoxesClient, MemoryKeyStore, files as f } from './src/index.js';
const MiB = 1 << 20;
const stack = await startStack({ base: 19600, allowedOrigins: [], env: { FILES_MAX_BYTES: String(128 * MiB), FILES_QUOTA_BYTES: String(1024 * MiB) } });
try {
  const cl = new BoxesClient({ authUrl: stack.authUrl, boxesUrl: stack.boxesUrl, realtimeUrl: stack.realtimeUrl, store: new MemoryKeyStore() });
  await cl.login({ authCode: 'code-alice', appId: 'boxes-miniapp', clientId: 'ref-hostapp' });
  const box = await cl.createBox('measure');
  const plain = new Uint8Array(randomBytes(64 * MiB));
  const key = f.newFileKey();
  let t = performance.now();
  const blob = await f.encryptFile(plain, key);
  console.log(`encrypt only: ${(64 / ((performance.now() - t) / 1000)).toFixed(1)} MiB/s`);
  t = performance.now();
  f.decryptFile(blob, key);
  console.log(`decrypt only: ${(64 / ((performance.now() - t) / 1000)).toFixed(1)} MiB/s`);
  for (let i = 0; i < 2; i++) {
    let n = 0;
    t = performance.now();
    const ev = await cl.uploadFile(box.id, plain, { name: 'big.bin', onProgress: () => n++ });
    const up = performance.now() - t;
    t = performance.now();
    const got = await cl.openFile(ev, { onProgress: () => n++ });
    const down = performance.now() - t;
    const same = createHash('sha256').update(got.bytes).digest('hex') === createHash('sha256').update(plain).digest('hex');
    console.log(`64 MiB through the SDK: upload ${(up / 1000).toFixed(2)} s (${(64 / (up / 1000)).toFixed(1)} MiB/s), download ${(down / 1000).toFixed(2)} s (${(64 / (down / 1000)).toFixed(1)} MiB/s), same bytes: ${same}, ${n} progress reports`);
  }
  console.log(`rss ${(process.memoryUsage().rss / MiB).toFixed(0)} MiB`);
} finally {
  await stack.stop();
}

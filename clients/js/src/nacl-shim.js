// Browser stand-in for the "tweetnacl" module: the page loads tweetnacl's nacl-fast.min.js with a
// classic <script> first (it defines globalThis.nacl), and maps "tweetnacl" to this file.
/** @type {any} */
const g = globalThis;
if (!g.nacl) throw new Error('load tweetnacl (nacl-fast.min.js) before the SDK');
export default g.nacl;

// The one crypto package. Node resolves "tweetnacl" from node_modules; a browser page maps the
// specifier with an import map to nacl-shim.js, which re-exports the UMD build it loaded.
import nacl from 'tweetnacl';

export default nacl;

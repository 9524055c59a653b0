// The one place that loads @peculiar/x509. It needs a Reflect metadata polyfill
// loaded first (its dependency injection uses it; see the library's README) and a
// WebCrypto implementation: Node's own.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(globalThis.crypto);

export { x509 };

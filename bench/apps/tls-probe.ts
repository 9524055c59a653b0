// What the mTLS pair negotiates, seen from the client side. Runs in the client pod as the
// proxy UID (so its connection is not redirected to the local outbound listener) and
// makes its connection with the outbound proxy's own connector (src/proxy/tcp/connectors.ts)
// and identity loader, so the TLS parameters are the ones proxy a uses towards proxy b.
// The server pod's inbound listener terminates it and forwards to the app, as for any
// meshed connection.
//
//   tls-probe --identity DIR --expect SPIFFE_ID --host H --port P [--msg BYTES] [--count N]
//
// Makes N sequential connections, each one request/response against a `once` server,
// and prints one JSON line: protocol, cipher, key-exchange group, ALPN, the server's
// certificate key, whether any session was resumed, and the handshake times.
import { parseArgs } from 'node:util';
import { origDst } from '../../src/net/addresses.ts';
import { mtlsConnector } from '../../src/proxy/tcp/connectors.ts';
import { createLogger } from '../../src/log.ts';
import { loadIdentity } from '../../src/tls/identity.ts';
import { parseSpiffeId } from '../../src/tls/spiffe.ts';
import type tls from 'node:tls';

const { values } = parseArgs({
  options: {
    identity: { type: 'string' },
    expect: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    msg: { type: 'string', default: '64' },
    count: { type: 'string', default: '20' },
    timeout: { type: 'string', default: '20000' },
  },
});

function fail(error: string): never {
  console.log(JSON.stringify({ ok: false, error }));
  process.exit(1);
}

setTimeout(() => fail('timeout'), Number(values.timeout)).unref();
if (!values.identity || !values.expect || !values.host || !values.port) fail('--identity, --expect, --host and --port are required');

const identity = loadIdentity(values.identity);
const expected = values.expect;
const connect = mtlsConnector(() => identity, { spiffeId: expected, trustDomain: parseSpiffeId(expected).trustDomain }, createLogger('warn', 'tls-probe'));
const dst = origDst(values.host, Number(values.port));
const msgSize = Number(values.msg);
const msg = Buffer.alloc(msgSize, 0x61);

interface Probe {
  protocol: string | null;
  cipher: string;
  group: string | undefined;
  alpn: string | false | null;
  peerKey: string | undefined;
  peerSpiffeId: string | undefined;
  resumed: boolean;
  handshakeUs: number;
  /** TLS 1.3 session tickets the server sent (resumption the connector never uses). */
  tickets: number;
}

function once(): Promise<Probe> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const { socket } = connect(dst);
    const s = socket as tls.TLSSocket;
    let probe: Probe | undefined;
    let got = 0;
    let tickets = 0;
    s.on('session', () => (tickets += 1));
    s.once('secureConnect', () => {
      const handshakeUs = Number(process.hrtime.bigint() - start) / 1000;
      const cert = s.getPeerX509Certificate();
      const key = cert?.publicKey;
      const details = key?.asymmetricKeyDetails;
      probe = {
        protocol: s.getProtocol(),
        cipher: s.getCipher().standardName,
        group: (s.getEphemeralKeyInfo() as { name?: string } | null)?.name,
        alpn: s.alpnProtocol,
        peerKey: key ? `${key.asymmetricKeyType}${details?.namedCurve ? ` ${details.namedCurve}` : ''}` : undefined,
        peerSpiffeId: cert?.subjectAltName,
        resumed: s.isSessionReused(),
        handshakeUs,
        tickets: 0,
      };
      s.write(msg);
    });
    s.on('data', (d: Buffer) => (got += d.length));
    // The connector keeps half-open connections (as the proxy must); the server closes first.
    s.on('end', () => s.end());
    s.on('error', reject);
    s.on('close', () => (probe && got === msgSize ? resolve({ ...probe, tickets }) : reject(new Error(`connection closed after ${got} of ${msgSize} answer bytes`))));
  });
}

const count = Number(values.count);
const probes: Probe[] = [];
try {
  for (let i = 0; i < count; i++) probes.push(await once());
} catch (err) {
  fail((err as Error).message);
}
const first = probes[0]!;
const times = probes.map((p) => p.handshakeUs).sort((a, b) => a - b);
console.log(
  JSON.stringify({
    ok: true,
    count,
    protocol: first.protocol,
    cipher: first.cipher,
    group: first.group,
    alpn: first.alpn,
    peerKey: first.peerKey,
    peerSpiffeId: first.peerSpiffeId,
    resumed: probes.filter((p) => p.resumed).length,
    ticketsPerConnection: probes.reduce((sum, p) => sum + p.tickets, 0) / count,
    // Sequential handshakes from this (cold) process: TCP connect + TLS 1.3, one at a time.
    handshakeUs: { min: times[0], p50: times[Math.ceil(count / 2) - 1], max: times[count - 1] },
  }),
);

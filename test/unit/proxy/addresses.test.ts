import net from 'node:net';
import t from 'tap';
import { origDst, unmapIPv4 } from '../../../src/net/addresses.ts';
import { isSelfDestination, LocalAddresses } from '../../../src/proxy/loop-guard.ts';
import { decodeSockaddr } from '../../../src/net/original-dst.ts';
import { compose, type Layer } from '../../../src/pipeline/compose.ts';

t.test('decodes sockaddr_in and sockaddr_in6 as the kernel writes them', async (t) => {
  const v4 = Buffer.alloc(28);
  v4.writeUInt16LE(2, 0);
  v4.writeUInt16BE(8080, 2);
  v4.set([10, 44, 0, 3], 4);
  t.same(decodeSockaddr(v4), { kind: 'orig-dst', address: '10.44.0.3', port: 8080, family: 4, key: '10.44.0.3|8080' });

  const v6 = Buffer.alloc(28);
  v6.writeUInt16LE(10, 0);
  v6.writeUInt16BE(443, 2);
  v6.writeUInt16BE(0xfd00, 8);
  v6.writeUInt16BE(0x2c, 10);
  v6.writeUInt16BE(0x3, 22);
  t.same(decodeSockaddr(v6), { kind: 'orig-dst', address: 'fd00:2c::3', port: 443, family: 6, key: 'fd00:2c::3|443' });

  const bad = Buffer.alloc(28);
  bad.writeUInt16LE(1, 0);
  t.throws(() => decodeSockaddr(bad), { code: 'MESHLET_ERR_ORIGINAL_DST' });
});

t.test('IPv4-mapped addresses are shown as IPv4', async (t) => {
  t.equal(unmapIPv4('::ffff:10.0.0.1'), '10.0.0.1');
  t.equal(unmapIPv4('::ffff:abcd'), '::ffff:abcd');
  t.equal(unmapIPv4('fd00::1'), 'fd00::1');
});

t.test('a destination that is the proxy itself is a loop', async (t) => {
  const local = new LocalAddresses();
  const ports = new Set([15001, 15006, 15020]);
  const socket = { localAddress: '::ffff:127.0.0.1', localPort: 15001 } as net.Socket;
  t.ok(isSelfDestination(origDst('127.0.0.1', 15001), socket, ports, local), 'not redirected: listener address');
  t.ok(isSelfDestination(origDst('::1', 15006), socket, ports, local), 'a proxy port on loopback');
  t.notOk(isSelfDestination(origDst('10.255.255.1', 15001), socket, ports, local), 'a proxy port on a remote address');
  t.notOk(isSelfDestination(origDst('127.0.0.1', 8080), socket, ports, local), 'another port on loopback');
});

t.test('layers run outermost first and see the result last', async (t) => {
  const seen: string[] = [];
  const layer = (name: string): Layer<number, number> => (next) => async (n) => {
    seen.push(`in ${name}`);
    const out = await next(n + 1);
    seen.push(`out ${name}`);
    return out * 10;
  };
  const handler = compose([layer('a'), layer('b')], async (n) => n);
  t.equal(await handler(1), 300);
  t.same(seen, ['in a', 'in b', 'out b', 'out a']);
});

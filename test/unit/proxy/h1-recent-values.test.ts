import fc from 'fast-check';
import t from 'tap';
import { Http1Parser, type Head } from '../../../src/proxy/http/h1/parser.ts';
import { RecentValues } from '../../../src/proxy/http/h1/recent-values.ts';
import { LIMITS } from '../../fixtures/h1-corpus/record.ts';

// The table of recent field values hands out a kept string for bytes seen before: whatever
// the order, the evictions and the reuse of the buffer the bytes are read from, what it
// returns must read as the bytes asked about.

t.test('every value returned reads as the bytes asked about, with the read buffer reused', (t) => {
  // A small alphabet and short values: the same bytes come back often, and values of one length differ in one byte.
  const value = fc.string({ unit: fc.constantFrom('a', 'b', ':', '8'), minLength: 0, maxLength: 4 });
  fc.assert(
    fc.property(fc.array(fc.tuple(value, fc.nat(6)), { minLength: 1, maxLength: 60 }), fc.integer({ min: 1, max: 4 }), (steps, capacity) => {
      const table = new RecentValues(capacity);
      const buffer = Buffer.alloc(16, 0x7a);
      for (const [text, at] of steps) {
        buffer.fill(0x7a); // the previous read's bytes are gone
        buffer.write(text, at, 'latin1');
        const got = table.intern(buffer, at, text.length, buffer.toString('latin1', at, at + text.length));
        if (got !== text) {
          t.equal(got, text, `after ${JSON.stringify(steps)} with room for ${capacity}`);
          return false;
        }
      }
      return true;
    }),
    { numRuns: 500 },
  );
  t.end();
});

t.test('values longer than the table keeps are handed back as they came', (t) => {
  const table = new RecentValues(2);
  const long = 'h'.repeat(200);
  const bytes = Buffer.from(long, 'latin1');
  t.equal(table.intern(bytes, 0, long.length, long), long);
  bytes[0] = 0x67; // a kept copy would answer the next call with the old bytes
  t.equal(table.intern(bytes, 0, long.length, 'g' + long.slice(1)), 'g' + long.slice(1));
  t.end();
});

t.test('the parser hands out the Host of each request as it came', (t) => {
  const heads: Head[] = [];
  const parser = new Http1Parser('request', {
    onHead: (head) => {
      heads.push(head);
      return true;
    },
    onBody: () => {},
    onMessageEnd: () => true,
    onError: (err) => t.fail(err.message),
  }, LIMITS);
  const hosts = ['cart:8080', 'cart:8081', 'cart:8080', 'Cart:8080', 'reviews.shop.svc.cluster.local:9080', 'cart:8080'];
  // One buffer for all reads, as a connection's: the kept bytes must be copies.
  const read = Buffer.alloc(256);
  for (const host of hosts) {
    const n = read.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 'latin1');
    parser.execute(read, n);
    read.fill(0);
  }
  t.same(
    heads.map((h) => h.headers[h.hostAt + 1]),
    hosts,
  );
  t.end();
});

t.test('a head that spans reads keeps its Host, however the read buffer is refilled', (t) => {
  const heads: Head[] = [];
  const parser = new Http1Parser('request', { onHead: (head) => void heads.push(head), onBody: () => {}, onMessageEnd: () => true, onError: (err) => t.fail(err.message) }, LIMITS);
  const text = 'GET / HTTP/1.1\r\nHost: cart:8080\r\nAccept: */*\r\n\r\n';
  const read = Buffer.alloc(256);
  for (let split = 1; split < text.length; split++) {
    read.write(text.slice(0, split), 'latin1');
    parser.execute(read, split);
    // The next read lands where the first was: the Host's bytes, if the parser still pointed at them, now say otherwise.
    read.fill('x');
    parser.execute(read, read.write(text.slice(split), 'latin1'));
    read.fill(0);
  }
  // A Host whose bytes are what the refilled buffer held: it must not be answered with a value kept for other bytes.
  parser.execute(read, read.write('GET / HTTP/1.1\r\nHost: xxxxxxxxx\r\n\r\n', 'latin1'));
  const hosts = heads.map((h) => h.headers[h.hostAt + 1]);
  t.equal(hosts.length, text.length);
  t.same(new Set(hosts.slice(0, -1)), new Set(['cart:8080']), 'every split');
  t.equal(hosts.at(-1), 'xxxxxxxxx');
  t.end();
});

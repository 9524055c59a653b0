// Reads what tcpdump captured (-w, classic pcap, Ethernet) and puts TCP streams back
// together, then reads TLS records and the hello messages off a stream: enough for the
// end-to-end tests to show what crossed the wire, without a protocol analyser.

export interface TcpSegment {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  seq: number;
  syn: boolean;
  ack: boolean;
  payload: Buffer;
}

/** The TCP segments of a pcap file (IPv4 and IPv6 over Ethernet); anything else is skipped. */
export function readPcap(file: Buffer): TcpSegment[] {
  if (file.length < 24) throw new Error(`not a pcap file (${file.length} bytes)`);
  const magic = file.readUInt32LE(0);
  const little = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const big = magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1;
  if (!little && !big) throw new Error(`not a classic pcap file (magic 0x${magic.toString(16)})`);
  const u32 = (at: number) => (little ? file.readUInt32LE(at) : file.readUInt32BE(at));
  const linkType = u32(20);
  if (linkType !== 1) throw new Error(`link type ${linkType} is not Ethernet`);
  const segments: TcpSegment[] = [];
  for (let at = 24; at + 16 <= file.length; ) {
    const captured = u32(at + 8);
    const frame = file.subarray(at + 16, at + 16 + captured);
    at += 16 + captured;
    const segment = tcpOf(frame);
    if (segment) segments.push(segment);
  }
  return segments;
}

function tcpOf(frame: Buffer): TcpSegment | undefined {
  if (frame.length < 14) return undefined;
  const etherType = frame.readUInt16BE(12);
  let ip = frame.subarray(14);
  let src: string;
  let dst: string;
  if (etherType === 0x0800) {
    if (ip.length < 20 || ip[9] !== 6) return undefined;
    const headerLength = (ip[0]! & 0x0f) * 4;
    const total = ip.readUInt16BE(2);
    src = [...ip.subarray(12, 16)].join('.');
    dst = [...ip.subarray(16, 20)].join('.');
    ip = ip.subarray(headerLength, total);
  } else if (etherType === 0x86dd) {
    if (ip.length < 40 || ip[6] !== 6) return undefined; // no extension headers in these pods
    const payloadLength = ip.readUInt16BE(4);
    src = ipv6Text(ip.subarray(8, 24));
    dst = ipv6Text(ip.subarray(24, 40));
    ip = ip.subarray(40, 40 + payloadLength);
  } else {
    return undefined;
  }
  if (ip.length < 20) return undefined;
  const dataOffset = (ip[12]! >> 4) * 4;
  return {
    src,
    dst,
    srcPort: ip.readUInt16BE(0),
    dstPort: ip.readUInt16BE(2),
    seq: ip.readUInt32BE(4),
    syn: (ip[13]! & 0x02) !== 0,
    ack: (ip[13]! & 0x10) !== 0,
    payload: Buffer.from(ip.subarray(dataOffset)),
  };
}

function ipv6Text(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // The URL parser writes an IPv6 host in its canonical, compressed form.
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

export interface TcpConnection {
  client: { address: string; port: number };
  server: { address: string; port: number };
  /** Bytes the client sent, in sequence order, retransmissions dropped. */
  fromClient: Buffer;
  /** Bytes the server sent. */
  fromServer: Buffer;
}

/** Connections whose SYN was captured, with each direction's bytes reassembled. */
export function tcpConnections(segments: TcpSegment[]): TcpConnection[] {
  const key = (s: TcpSegment) => `${s.src}|${s.srcPort}|${s.dst}|${s.dstPort}`;
  const flows = new Map<string, TcpSegment[]>();
  for (const s of segments) flows.set(key(s), [...(flows.get(key(s)) ?? []), s]);
  const connections: TcpConnection[] = [];
  for (const flow of flows.values()) {
    // The client's direction is the one that opened with a SYN without ACK.
    const syn = flow.find((s) => s.syn && !s.ack);
    if (!syn) continue;
    const reverse = flows.get(`${syn.dst}|${syn.dstPort}|${syn.src}|${syn.srcPort}`) ?? [];
    connections.push({
      client: { address: syn.src, port: syn.srcPort },
      server: { address: syn.dst, port: syn.dstPort },
      fromClient: reassemble(flow),
      fromServer: reassemble(reverse),
    });
  }
  return connections;
}

function reassemble(flow: TcpSegment[]): Buffer {
  const syn = flow.find((s) => s.syn);
  if (!syn) return Buffer.alloc(0);
  const start = (syn.seq + 1) >>> 0;
  const pieces = flow
    .filter((s) => s.payload.length > 0)
    .map((s) => ({ offset: (s.seq - start) >>> 0, payload: s.payload }))
    .sort((x, y) => x.offset - y.offset);
  const chunks: Buffer[] = [];
  let next = 0;
  for (const { offset, payload } of pieces) {
    if (offset > next) throw new Error(`the capture lacks bytes ${next}..${offset} of a TCP stream`);
    if (offset + payload.length <= next) continue; // retransmission
    chunks.push(payload.subarray(next - offset));
    next = offset + payload.length;
  }
  return Buffer.concat(chunks);
}

// --- TLS (RFC 8446) ---------------------------------------------------------------

export const TLS_CONTENT = { changeCipherSpec: 20, alert: 21, handshake: 22, applicationData: 23 } as const;

export interface TlsRecord {
  type: number;
  /** The record layer's legacy version (0x0301 or 0x0303 even for TLS 1.3). */
  version: number;
  body: Buffer;
}

/** Splits a stream into TLS records; throws if the bytes are not TLS records. */
export function tlsRecords(stream: Buffer): TlsRecord[] {
  const records: TlsRecord[] = [];
  for (let at = 0; at < stream.length; ) {
    if (at + 5 > stream.length) throw new Error(`a truncated TLS record header at byte ${at}`);
    const type = stream[at]!;
    const version = stream.readUInt16BE(at + 1);
    const length = stream.readUInt16BE(at + 3);
    if (type < 20 || type > 23 || version >> 8 !== 3 || length > 16384 + 256) {
      throw new Error(`not a TLS record at byte ${at}: ${stream.subarray(at, at + 5).toString('hex')}`);
    }
    records.push({ type, version, body: stream.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return records;
}

export interface Hello {
  /** 1 ClientHello, 2 ServerHello. */
  handshakeType: number;
  legacyVersion: number;
  /** supported_versions (extension 43): offered by a client, the one chosen by a server. */
  supportedVersions: number[];
  /** ALPN protocol names (extension 16). */
  alpn: string[];
}

/** The ClientHello or ServerHello at the start of a handshake record's body. */
export function readHello(record: TlsRecord): Hello {
  if (record.type !== TLS_CONTENT.handshake) throw new Error(`record type ${record.type} is not a handshake`);
  const b = record.body;
  const handshakeType = b[0]!;
  if (handshakeType !== 1 && handshakeType !== 2) throw new Error(`handshake type ${handshakeType} is not a hello`);
  let at = 4;
  const legacyVersion = b.readUInt16BE(at);
  at += 2 + 32; // version, random
  at += 1 + b[at]!; // legacy_session_id
  if (handshakeType === 1) {
    at += 2 + b.readUInt16BE(at); // cipher_suites
    at += 1 + b[at]!; // legacy_compression_methods
  } else {
    at += 2 + 1; // cipher_suite, legacy_compression_method
  }
  const hello: Hello = { handshakeType, legacyVersion, supportedVersions: [], alpn: [] };
  if (at >= b.length) return hello;
  const end = at + 2 + b.readUInt16BE(at);
  at += 2;
  while (at + 4 <= end) {
    const type = b.readUInt16BE(at);
    const data = b.subarray(at + 4, at + 4 + b.readUInt16BE(at + 2));
    at += 4 + data.length;
    if (type === 43) {
      if (handshakeType === 1) for (let i = 1; i + 2 <= 1 + data[0]!; i += 2) hello.supportedVersions.push(data.readUInt16BE(i));
      else hello.supportedVersions.push(data.readUInt16BE(0));
    } else if (type === 16) {
      for (let i = 2; i < data.length; i += 1 + data[i]!) hello.alpn.push(data.subarray(i + 1, i + 1 + data[i]!).toString('latin1'));
    }
  }
  return hello;
}

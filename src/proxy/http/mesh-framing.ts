import type { H2ServerFraming } from './h2-downstream.ts';
import type { H2Framing } from './h2-upstream.ts';
import type { Http1ServerFraming } from './http1-downstream.ts';
import type { Http1Framing } from './http1-upstream.ts';
import type { Head } from './h1/parser.ts';
import { caseOf, get, isMeshHop, MESH_CASE_HEADER, MESH_HEADERS, MESH_METADATA_HEADER, MESH_PROTOCOL_HEADER, restoreCase, without, type RawHeaders } from './headers.ts';
import type { WorkloadMetadata } from '../../pipeline/exchange.ts';
import { decodeMetadata, encodeMetadata } from './peer-metadata.ts';

// meshlet/http1 between sidecars carries an app's HTTP/1.1 requests as they are, with the
// sending workload in meshlet-peer-metadata. meshlet/h2 carries each app request as one
// HTTP/2 stream, whatever the app spoke. Three headers travel with it and are removed on arrival:
//   meshlet-protocol       the app's protocol (http1 or h2), so the far side speaks it to its app;
//   meshlet-header-case    the HTTP/1.1 names whose case HTTP/2 would lose (both directions);
//   meshlet-peer-metadata  the sending workload (both directions), for telemetry labels.

/** Received headers or trailers in the case the sender's meshlet-header-case gives, without the mesh headers. */
function restored(headers: RawHeaders): RawHeaders {
  return restoreCase(headers, get(headers, MESH_CASE_HEADER), isMeshHop);
}

/** meshlet-header-case for headers or trailers about to lose their case to HTTP/2, when any name has some. */
function caseHeader(headers: RawHeaders): Record<string, string> {
  const names = caseOf(headers);
  return names ? { [MESH_CASE_HEADER]: names } : {};
}

/** The outbound sidecar's side of a meshlet/h2 exchange. */
export function meshClientFraming(local: WorkloadMetadata): H2Framing {
  const metadata = encodeMetadata(local);
  return {
    requestHeaders(req) {
      const extra: Record<string, string> = { [MESH_PROTOCOL_HEADER]: req.protocol, [MESH_METADATA_HEADER]: metadata };
      if (req.protocol === 'http1') {
        const names = caseOf(req.headers, req.hostName);
        if (names) extra[MESH_CASE_HEADER] = names;
      }
      return extra;
    },
    // Trailers carry their own meshlet-header-case: they are not known when the head is sent.
    requestTrailers: (trailers, req) => (req.protocol === 'http1' ? caseHeader(trailers) : {}),
    response(head) {
      const peer = decodeMetadata(get(head.headers, MESH_METADATA_HEADER));
      return { headers: restored(head.headers), ...(peer ? { peer } : {}) };
    },
    responseTrailers: restored,
  };
}

/** The inbound sidecar's side of a meshlet/h2 exchange. */
export function meshServerFraming(local: WorkloadMetadata): H2ServerFraming {
  const metadata = encodeMetadata(local);
  return {
    request(headers) {
      const protocol = get(headers, MESH_PROTOCOL_HEADER) === 'http1' ? 'http1' : 'h2';
      const names = get(headers, MESH_CASE_HEADER);
      const peer = decodeMetadata(get(headers, MESH_METADATA_HEADER));
      const hostName = names?.split(',').find((n) => n.toLowerCase() === 'host') ?? (protocol === 'http1' ? 'Host' : 'host');
      return { protocol, headers: restored(headers), hostName, ...(peer ? { peer } : {}) };
    },
    requestTrailers: restored,
    responseHeaders: (response) => ({ [MESH_METADATA_HEADER]: metadata, ...caseHeader(response.headers) }),
    responseTrailers: caseHeader,
  };
}

/** The sending workload of an HTTP/1.1 head, from the meshlet-peer-metadata field its parser found. */
function metadataOf(head: Head): WorkloadMetadata | undefined {
  return head.metadataAt === -1 ? undefined : decodeMetadata(head.headers[head.metadataAt + 1]);
}

/** The outbound sidecar's side of a meshlet/http1 exchange: HTTP/1.1 keeps the names' case, so only the metadata travels. */
export function meshHttp1ClientFraming(local: WorkloadMetadata): Http1Framing {
  const added = [MESH_METADATA_HEADER, encodeMetadata(local)];
  return {
    addedRequestHeaders: () => added,
    responsePeer: metadataOf,
    responseTrailers: (trailers) => without(trailers, isMeshHop),
  };
}

/** The inbound sidecar's side of a meshlet/http1 exchange. */
export function meshHttp1ServerFraming(local: WorkloadMetadata): Http1ServerFraming {
  const metadata = [MESH_METADATA_HEADER, encodeMetadata(local)];
  return {
    peer: metadataOf,
    responseHeaders: () => metadata,
  };
}

import type { H2ServerFraming } from './h2-downstream.ts';
import type { H2Framing } from './h2-upstream.ts';
import { caseOf, get, isMeshHop, MESH_CASE_HEADER, MESH_METADATA_HEADER, MESH_PROTOCOL_HEADER, restoreCase, without, type RawHeaders } from './headers.ts';
import { decodeMetadata, encodeMetadata, type WorkloadMetadata } from './peer-metadata.ts';

// meshlet/h2 between sidecars carries each app request as one HTTP/2 stream, whatever
// the app spoke. Three headers travel with it and are removed on arrival:
//   meshlet-protocol       the app's protocol (http1 or h2), so the far side speaks it to its app;
//   meshlet-header-case    the HTTP/1.1 names whose case HTTP/2 would lose (both directions);
//   meshlet-peer-metadata  the sending workload (both directions), for telemetry labels.

function withoutMeshHop(headers: RawHeaders): RawHeaders {
  return without(headers, isMeshHop);
}

/** The outbound sidecar's side of a meshlet/h2 exchange. */
export function meshClientFraming(local: WorkloadMetadata): H2Framing {
  const metadata = encodeMetadata(local);
  return {
    requestHeaders(req) {
      const extra: Record<string, string> = { [MESH_PROTOCOL_HEADER]: req.protocol, [MESH_METADATA_HEADER]: metadata };
      if (req.protocol === 'http1') {
        const names = caseOf([req.hostName, '', ...req.headers]);
        if (names) extra[MESH_CASE_HEADER] = names;
      }
      return extra;
    },
    response(head) {
      const peer = decodeMetadata(get(head.headers, MESH_METADATA_HEADER));
      return { headers: withoutMeshHop(restoreCase(head.headers, get(head.headers, MESH_CASE_HEADER))), ...(peer ? { peer } : {}) };
    },
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
      return { protocol, headers: withoutMeshHop(restoreCase(headers, names)), hostName, ...(peer ? { peer } : {}) };
    },
    responseHeaders(response) {
      const extra: Record<string, string> = { [MESH_METADATA_HEADER]: metadata };
      const names = caseOf(response.headers);
      if (names) extra[MESH_CASE_HEADER] = names;
      return extra;
    },
  };
}

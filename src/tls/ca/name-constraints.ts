import { AsnConvert } from '@peculiar/asn1-schema';
import { GeneralName, GeneralSubtree, GeneralSubtrees, id_ce_nameConstraints, NameConstraints } from '@peculiar/asn1-x509';
import { MeshletError } from '../../errors.ts';

// Name constraints (RFC 5280 4.2.1.10) with URI subtrees: @peculiar/x509 has no
// extension class for them, so the value is built with its ASN.1 schema package.
// `openssl x509 -text` and `openssl verify` in the tests check the bytes independently.

export const OID_NAME_CONSTRAINTS = id_ce_nameConstraints;

/** DER of a NameConstraints value permitting URIs whose host is one of `hosts`. */
export function encodePermittedUriHosts(hosts: readonly string[]): Uint8Array<ArrayBuffer> {
  if (hosts.length === 0) throw new Error('at least one permitted host is needed');
  const subtrees = hosts.map((host) => new GeneralSubtree({ base: new GeneralName({ uniformResourceIdentifier: host }) }));
  return new Uint8Array(AsnConvert.serialize(new NameConstraints({ permittedSubtrees: new GeneralSubtrees(subtrees) })));
}

/** The hosts of the permitted URI subtrees in a NameConstraints value (other kinds ignored). */
export function decodePermittedUriHosts(der: Uint8Array): string[] {
  let value: NameConstraints;
  try {
    value = AsnConvert.parse(der, NameConstraints);
  } catch {
    throw new MeshletError('MESHLET_ERR_CA', 'malformed name constraints extension');
  }
  return (value.permittedSubtrees ?? []).flatMap((s) => (s.base.uniformResourceIdentifier === undefined ? [] : [s.base.uniformResourceIdentifier]));
}

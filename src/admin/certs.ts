import type { X509Certificate } from 'node:crypto';
import type { Identity } from '../tls/identity.ts';

// What /certs shows of the workload identity in use: names, serials and validity, never
// key material (the key is not even read here).

export interface CertificateView {
  readonly subject: string;
  readonly serial: string;
  readonly notBefore: string;
  readonly notAfter: string;
}

export interface IdentityView {
  readonly spiffeId: string;
  readonly trustDomain: string;
  readonly serial: string;
  readonly notBefore: string;
  readonly notAfter: string;
  /** Negative once expired. */
  readonly secondsUntilExpiry: number;
  readonly chain: readonly CertificateView[];
  readonly trustAnchors: readonly CertificateView[];
}

export function identityView(identity: Identity, now: Date): IdentityView {
  return {
    spiffeId: identity.spiffeId,
    trustDomain: identity.trustDomain,
    serial: identity.serial,
    notBefore: identity.notBefore.toISOString(),
    notAfter: identity.notAfter.toISOString(),
    secondsUntilExpiry: Math.floor((identity.notAfter.getTime() - now.getTime()) / 1000),
    chain: identity.intermediates.map(certificateView),
    trustAnchors: identity.anchors.map(certificateView),
  };
}

function certificateView(cert: X509Certificate): CertificateView {
  return {
    subject: cert.subject.replaceAll('\n', ', '),
    serial: cert.serialNumber,
    notBefore: new Date(cert.validFrom).toISOString(),
    notAfter: new Date(cert.validTo).toISOString(),
  };
}

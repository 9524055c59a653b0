import { createPrivateKey, createPublicKey, KeyObject } from 'node:crypto';
import { MeshletError } from '../../errors.ts';

// Key pairs for CAs and workloads: generated with WebCrypto (what @peculiar/x509
// signs with), written as PKCS#8 PEM, read back from any PEM form OpenSSL writes
// (PKCS#8, SEC1 "EC PRIVATE KEY", PKCS#1 "RSA PRIVATE KEY").

export type KeyType = 'ec' | 'rsa';
export const KEY_TYPES: readonly KeyType[] = ['ec', 'rsa'];

const GENERATE: Record<KeyType, EcKeyGenParams | RsaHashedKeyGenParams> = {
  ec: { name: 'ECDSA', namedCurve: 'P-256' },
  rsa: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: Uint8Array.of(1, 0, 1), hash: 'SHA-256' },
};

export function describeKeyType(type: KeyType): string {
  return type === 'ec' ? 'ECDSA P-256' : 'RSA 2048';
}

export async function generateKeyPair(type: KeyType): Promise<CryptoKeyPair> {
  return (await crypto.subtle.generateKey(GENERATE[type], true, ['sign', 'verify'])) as CryptoKeyPair;
}

export function privateKeyPem(key: CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }) as string;
}

/** WebCrypto parameters to sign with a key: ECDSA's hash follows the curve. */
export function signingAlgorithm(key: CryptoKey): Algorithm | EcdsaParams {
  if (key.algorithm.name === 'ECDSA') {
    const curve = (key.algorithm as EcKeyAlgorithm).namedCurve;
    return { name: 'ECDSA', hash: curve === 'P-384' ? 'SHA-384' : 'SHA-256' };
  }
  return { name: key.algorithm.name };
}

/**
 * A signing key from PEM text. `source` names the file in errors. Supported: EC P-256
 * and P-384, RSA of 2048 bits or more.
 */
export async function importSigningKey(pem: string, source: string): Promise<{ key: CryptoKey; spki: Buffer }> {
  if (pem.includes('ENCRYPTED')) throw caError(`${source} is an encrypted key; meshlet needs it unencrypted`);
  let object: KeyObject;
  try {
    object = createPrivateKey(pem);
  } catch (err) {
    throw caError(`${source} is not a PEM private key`, err);
  }
  const spki = createPublicKey(object).export({ type: 'spki', format: 'der' });
  const pkcs8 = object.export({ type: 'pkcs8', format: 'der' });
  const details = object.asymmetricKeyDetails ?? {};
  let algorithm: EcKeyImportParams | RsaHashedImportParams;
  if (object.asymmetricKeyType === 'ec') {
    const curve = ({ prime256v1: 'P-256', secp384r1: 'P-384' } as Record<string, string>)[details.namedCurve ?? ''];
    if (curve === undefined) throw caError(`${source}: EC curve ${details.namedCurve} is not supported (use P-256 or P-384)`);
    algorithm = { name: 'ECDSA', namedCurve: curve };
  } else if (object.asymmetricKeyType === 'rsa') {
    if ((details.modulusLength ?? 0) < 2048) throw caError(`${source}: RSA keys shorter than 2048 bits are not supported`);
    algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  } else {
    throw caError(`${source}: ${object.asymmetricKeyType} keys are not supported (use EC P-256/P-384 or RSA)`);
  }
  return { key: await crypto.subtle.importKey('pkcs8', pkcs8, algorithm, false, ['sign']), spki };
}

function caError(message: string, cause?: unknown): MeshletError {
  return new MeshletError('MESHLET_ERR_CA', message, { cause });
}

import path from 'node:path';
import { errorLine, usage } from '../../args.ts';
import { isMeshletError } from '../../errors.ts';
import { didYouMean } from '../../suggest.ts';
import { describeKeyType } from './keys.ts';
import { initCa, issue, type Outcome } from './operations.ts';
import { parseInitFlags, parseIssueFlags } from './options.ts';

// `meshlet ca init|issue`: flags, then the operation, then one line of output. Every
// failure is one line on stderr; exit 2 for usage and bad input (flags, SPIFFE IDs,
// trust domains, a non-empty --out), 1 for everything else (unreadable or
// inconsistent CA files, an expired CA, a failed write).

export const CA_USAGE = `usage: meshlet ca <init|issue> [flags]

A small certificate authority for meshlet's mutual TLS: SPIFFE X.509 identities
(X509-SVIDs) in the layout of Kubernetes TLS secrets. See docs/ca.md.

  meshlet ca init  --out DIR [--trust-domain TD] [--ttl 8760h] [--key ec|rsa] [--force]
      a root CA
  meshlet ca init  --root ROOT_DIR --out DIR [--ttl 8760h] [--key ec|rsa] [--force]
      an intermediate CA signed by that root
  meshlet ca issue --ca DIR --spiffe-id spiffe://TD/ns/NS/sa/SA --out DIR [--ttl 24h] [--key ec|rsa] [--force]
      a workload certificate

  --out DIR            where to write; created (mode 0700) if missing; must be empty
  --root ROOT_DIR      init: sign an intermediate with the root CA in ROOT_DIR
  --trust-domain TD    init: the SPIFFE trust domain (cluster.local)
  --ca DIR             issue: the CA directory made by 'meshlet ca init'
  --spiffe-id ID       issue: spiffe://TD/ns/NAMESPACE/sa/SERVICE_ACCOUNT, in the CA's trust domain
  --ttl DURATION       lifetime, Go syntax (init 8760h, issue 24h)
  --key ec|rsa         key type: ECDSA P-256 (ec, default) or RSA 2048
  --force              write into a non-empty --out, replacing files of the same names
  -h, --help           this text; 'meshlet ca init --help' and 'meshlet ca issue --help' say more

Exit codes: 0 ok, 1 failure (unreadable or inconsistent CA files, expired CA, write error), 2 usage or bad input.`;

export const INIT_USAGE = `usage: meshlet ca init --out DIR [--root ROOT_DIR] [flags]

Creates a root CA in DIR (ca.crt, ca.key), or with --root an intermediate CA signed by
the root in ROOT_DIR, so the root's key can stay offline (DIR then holds ca.crt and
ca.key of the intermediate, and root.crt). CA certificates carry a URI name constraint
that limits them to their trust domain.

  --out DIR            where to write; created (mode 0700) if missing; must be empty
  --root ROOT_DIR      sign an intermediate with the root CA in ROOT_DIR (ca.crt, ca.key)
  --trust-domain TD    the SPIFFE trust domain (cluster.local; an intermediate's defaults to its root's)
  --ttl DURATION       lifetime, Go syntax (8760h); cut to the root's expiry for an intermediate
  --key ec|rsa         key type: ECDSA P-256 (ec, default) or RSA 2048
  --force              write into a non-empty --out, replacing files of the same names
  -h, --help           this text

Exit codes: 0 ok, 1 failure (unreadable or inconsistent CA files, write error), 2 usage or bad input.`;

export const ISSUE_USAGE = `usage: meshlet ca issue --ca DIR --spiffe-id ID --out DIR [flags]

Issues a workload certificate (X509-SVID) for the SPIFFE ID, signed by the CA in --ca,
and writes tls.crt (the certificate, then any intermediate), tls.key (PKCS#8, mode
0600) and ca.crt (the root: the trust anchor) to --out.

  --ca DIR             CA directory made by 'meshlet ca init' (ca.crt, ca.key[, root.crt])
  --spiffe-id ID       spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT, in the CA's trust domain
  --out DIR            where to write; created (mode 0700) if missing; must be empty
  --ttl DURATION       lifetime, Go syntax (24h); cut to the CA's own expiry if longer
  --key ec|rsa         key type: ECDSA P-256 (ec, default) or RSA 2048
  --force              write into a non-empty --out, replacing tls.crt, tls.key and ca.crt
  -h, --help           this text

Exit codes: 0 ok, 1 failure (unreadable or inconsistent CA files, expired CA, write error), 2 usage or bad input.`;

const SUBCOMMANDS = ['init', 'issue'];

export interface CaDeps {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly now: () => Date;
}

const defaultDeps: CaDeps = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  now: () => new Date(),
};

/** `meshlet ca ...` (argv is everything after `ca`); returns the process exit code. */
export async function caCommand(argv: string[], _env: NodeJS.ProcessEnv, deps: Partial<CaDeps> = {}): Promise<number> {
  const io: CaDeps = { ...defaultDeps, ...deps };
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    io.out(CA_USAGE);
    return 0;
  }
  if (sub !== 'init' && sub !== 'issue') {
    const problem = sub === undefined ? 'missing subcommand: init or issue' : `unknown subcommand '${sub}': init or issue${didYouMean(sub, SUBCOMMANDS)}`;
    io.err(errorLine('ca', usage(problem)));
    return 2;
  }
  try {
    const line = sub === 'init' ? await runInit(rest, io) : await runIssue(rest, io);
    io.out(line);
    return 0;
  } catch (err) {
    io.err(errorLine(`ca ${sub}`, err, 'MESHLET_ERR_CA'));
    return isMeshletError(err, 'MESHLET_ERR_USAGE') || isMeshletError(err, 'MESHLET_ERR_SPIFFE_ID') ? 2 : 1;
  }
}

async function runInit(argv: string[], io: CaDeps): Promise<string> {
  const flags = parseInitFlags(argv);
  if (flags.help) return INIT_USAGE;
  const result = await initCa(flags, io.now());
  const signedBy = flags.root === undefined ? '' : `, signed by ${path.join(flags.root, 'ca.crt')},`;
  return `meshlet ca init: ${result.kind} CA for trust domain ${result.trustDomain} (${describeKeyType(flags.keyType)})${signedBy} written to ${written(result)}; ${validUntil(result, flags.ttlText)}`;
}

async function runIssue(argv: string[], io: CaDeps): Promise<string> {
  const flags = parseIssueFlags(argv);
  if (flags.help) return ISSUE_USAGE;
  const result = await issue(flags, io.now());
  return `meshlet ca issue: certificate for ${flags.spiffeId.id} (${describeKeyType(flags.keyType)}) written to ${written(result)}; ${validUntil(result, flags.ttlText)}`;
}

function written(result: Outcome): string {
  return `${result.dir} (${result.files.join(', ')})`;
}

function validUntil(result: Outcome, ttl: string): string {
  const until = `valid until ${result.notAfter.toISOString()}`;
  return result.clamped ? `${until}, the issuing CA's own expiry (shorter than --ttl ${ttl})` : until;
}

import { readFileSync } from 'node:fs';
import { errorLines, parseCommandLine, type OptionSpecs } from '../args.ts';
import { isMeshletError } from '../errors.ts';
import { settingsFromFlags, SETTING_FLAGS, ANNOTATION_PREFIX } from './settings.ts';
import { joinStreams, readSources } from './sources.ts';
import { transformText } from './stream.ts';
import { editObject, injectEdit, uninjectEdit, WORKLOAD_KINDS, type Outcome, type PodEdit } from './workloads.ts';

// `meshlet inject` and `meshlet uninject`: manifests in, manifests out on stdout, one
// line per pod template on stderr saying what was done. Nothing is written when any
// input is refused, so a pipe into `kubectl apply -f -` applies all or nothing.

const INJECT_USAGE = `usage: meshlet inject [flags] [FILE|DIR|-]...
       meshlet uninject [FILE|DIR|-]...

Reads Kubernetes manifests (YAML or JSON; files, directories, - for stdin, the default)
and writes them to stdout with every pod template meshed (${WORKLOAD_KINDS.join(', ')}, and
the items of Lists); other objects are copied unchanged. uninject removes exactly what
inject added. Per-pod settings: annotations ${ANNOTATION_PREFIX}<flag name> (docs/kubernetes.md).

flags (inject):
  --sidecar-mode native|classic   native sidecar (init container, restartPolicy Always;
                                  Kubernetes >= 1.29; default) or a first container
                                  with a 'meshlet wait' postStart hook
  --proxy-image IMAGE             default meshlet-proxy:0.1.0
  --init-image IMAGE              default meshlet-init:0.1.0
  --image-pull-policy POLICY      Always, IfNotPresent or Never (default: the cluster's)
  --identity secret|cert-manager  where the identity comes from (default secret)
  --identity-secret NAME          default meshlet-identity-{serviceAccount}
  --issuer NAME                   cert-manager issuer (default meshlet-ca)
  --issuer-kind KIND              Issuer or ClusterIssuer (default)
  --trust-domain DOMAIN           for cert-manager's SPIFFE IDs (default cluster.local)
  --mtls permissive|strict|disable  the sidecar's inbound mTLS mode (default: the proxy's, permissive)
  --mesh-cidrs CIDRS              destinations reached over mTLS (the cluster's pod CIDRs)
  --rewrite-app-probes true|false send the app's probes through 15020 (default: when strict)
  --prometheus true|false         add prometheus.io/* annotations (default true)
  --proxy-cpu Q, --proxy-memory Q requests (default 200m, 128Mi)
  --proxy-cpu-limit Q, --proxy-memory-limit Q   limits (default none, 256Mi)`;

export const injectCommand = (argv: string[]) => runManifestCommand('inject', argv);
export const uninjectCommand = (argv: string[]) => runManifestCommand('uninject', argv);

export interface CommandIO {
  readonly stdin: () => string;
  readonly out: (text: string) => void;
  readonly err: (line: string) => void;
}

const defaultIO: CommandIO = {
  stdin: () => readFileSync(0, 'utf8'),
  out: (text) => process.stdout.write(text),
  err: (line) => process.stderr.write(`${line}\n`),
};

export async function runManifestCommand(command: 'inject' | 'uninject', argv: string[], io: CommandIO = defaultIO): Promise<number> {
  try {
    const specs: OptionSpecs = Object.fromEntries((command === 'inject' ? SETTING_FLAGS : []).map((f) => [f, { type: 'string' as const }]));
    const { values, operands } = parseCommandLine(argv, specs, { command });
    if (values.help) {
      io.out(`${INJECT_USAGE}\n`);
      return 0;
    }
    const { help: _, ...flags } = values as Record<string, string | undefined>;
    const edit: PodEdit = command === 'inject' ? injectEdit(settingsFromFlags(flags)) : uninjectEdit;
    const outcomes: Outcome[] = [];
    const texts = readSources(operands, io.stdin).map((s) => transformText(s.text, s.name, (object, where) => editObject(object, where, edit, outcomes)));
    io.out(joinStreams(texts));
    for (const o of outcomes) {
      io.err(`meshlet ${command}: ${o.where}: ${o.changed ? (command === 'inject' ? 'injected' : 'uninjected') : `unchanged (${o.reason})`}`);
      for (const warning of o.warnings ?? []) io.err(`meshlet ${command}: ${o.where}: warning: ${warning}`);
    }
    return 0;
  } catch (err) {
    for (const line of errorLines(command, err, 'MESHLET_ERR_MANIFEST')) io.err(line);
    return isMeshletError(err, 'MESHLET_ERR_USAGE') ? 2 : 1;
  }
}

import { errorLine, parseOptions, usage, type OptionSpecs } from '../args.ts';
import { isMeshletError } from '../errors.ts';
import { settingsFromFlags, SETTING_FLAGS } from '../inject/settings.ts';
import { parsePort } from '../iptables/values.ts';
import { createLogger } from '../log.ts';
import { startWebhook } from './server.ts';

// `meshlet webhook`: the mutating admission webhook. It takes inject's flags, applied
// to every pod it injects; pods still override them with their own annotations.

const USAGE = `usage: meshlet webhook --tls-dir DIR --namespace NS [--port 8443] [inject's flags]

Serves the mutating admission webhook (AdmissionReview admission.k8s.io/v1) on HTTPS:
POST /inject, GET /healthz. Pods being created in namespaces labelled
meshlet.io/inject=enabled, or labelled meshlet.io/inject=true themselves, get the
same containers as 'meshlet inject' adds, as a JSON patch (the selectors are in
deploy/webhook.yaml). Never injects kube-system, kube-public, kube-node-lease or NS.

  --tls-dir DIR     tls.crt and tls.key: the serving certificate (re-read every 30 s)
  --namespace NS    the webhook's own namespace, never injected
  --port N          default 8443
Inject's flags (--sidecar-mode, --proxy-image, --mtls, ...): see meshlet inject --help.`;

export async function webhookCommand(argv: string[]): Promise<number> {
  let log: ReturnType<typeof createLogger> | undefined;
  try {
    const specs: OptionSpecs = Object.fromEntries(['tls-dir', 'namespace', 'port', ...SETTING_FLAGS].map((f) => [f, { type: 'string' as const }]));
    const { help, 'tls-dir': tlsDir, namespace, port, ...flags } = parseOptions(argv, specs, { command: 'webhook' }) as Record<string, string | undefined> & { help?: boolean };
    if (help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (!tlsDir) throw usage('--tls-dir is required (a directory with tls.crt and tls.key)');
    if (!namespace) throw usage("--namespace is required (the webhook's own namespace, which it never injects)");
    const settings = settingsFromFlags(flags);
    log = createLogger('info', 'meshlet-webhook');
    const webhook = await startWebhook({ port: port === undefined ? 8443 : parsePort(port, '--port'), tlsDir, settings, scope: { ownNamespace: namespace }, log });
    log.info({ port: webhook.port, namespace }, 'ready');
    await new Promise<void>((resolve) => {
      const stop = () => void webhook.close().then(resolve);
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    return 0;
  } catch (err) {
    process.stderr.write(`${errorLine('webhook', err)}\n`);
    return isMeshletError(err, 'MESHLET_ERR_USAGE') ? 2 : 1;
  }
}

import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import YAML from 'yaml';
import { REPO_ROOT } from '../../../src/testbed/netns.ts';
import { INJECT_LABEL } from '../../../src/webhook/review.ts';
import { NO_SCHEMA, typeOf, validateObject } from '../../helpers/kube-schema.ts';

// deploy/ holds the webhook's manifests. Without an API server here, this checks them
// against the Kubernetes OpenAPI schema, and that they agree with each other and with
// the code: the path and port the API server calls, the certificate's names and Secret,
// the label, and the namespaces that are never sent to the webhook.

const objects = (file: string) => YAML.parseAllDocuments(readFileSync(path.join(REPO_ROOT, 'deploy', file), 'utf8')).map((d) => d.toJS());
const all = [...objects('webhook.yaml'), ...objects('webhook-certificate.yaml')];
const find = (kind: string) => all.find((o) => o.kind === kind);

t.test('every manifest is valid against the Kubernetes schema', async (t) => {
  for (const object of all) t.doesNotThrow(() => validateObject(object), `${object.kind} ${object.metadata.name}`);
  // cert-manager's Issuer and Certificate come with cert-manager's CRDs, not in kubernetes-models.
  t.same(all.filter((o) => NO_SCHEMA.includes(typeOf(o))).map((o) => o.kind).sort(), ['Certificate', 'Issuer'], 'only the cert-manager objects go unchecked');
});

t.test('the webhook configuration reaches the server the Deployment runs', async (t) => {
  const config = find('MutatingWebhookConfiguration');
  const service = find('Service');
  const deployment = find('Deployment');
  const container = deployment.spec.template.spec.containers[0];
  const args: string[] = container.command;
  t.same(args.slice(0, 2), ['meshlet', 'webhook']);
  const port = Number(args.find((a) => a.startsWith('--port='))!.split('=')[1]);
  t.equal(container.ports.find((p: any) => p.name === service.spec.ports[0].targetPort).containerPort, port, 'Service → container port → --port');
  t.equal(config.webhooks.length, 2);
  for (const hook of config.webhooks) {
    t.same(hook.clientConfig.service, { name: service.metadata.name, namespace: service.metadata.namespace, path: '/inject', port: service.spec.ports[0].port });
    t.ok(hook.admissionReviewVersions.includes('v1'));
    t.equal(hook.sideEffects, 'None', 'required for dry-run requests');
    t.ok(['Fail', 'Ignore'].includes(hook.failurePolicy));
    t.same(hook.rules, [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }]);
    const excluded = hook.namespaceSelector.matchExpressions.find((e: any) => e.key === 'kubernetes.io/metadata.name');
    t.same(excluded, { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'kube-public', 'kube-node-lease', deployment.metadata.namespace] });
    t.ok(JSON.stringify([hook.namespaceSelector, hook.objectSelector]).includes(INJECT_LABEL), 'opt-in by the label the code reads');
  }
  t.ok(args.includes('--namespace=$(POD_NAMESPACE)'));
});

t.test('the serving certificate is for the Service and lands where the Deployment reads it', async (t) => {
  const certificate = find('Certificate');
  const service = find('Service');
  const deployment = find('Deployment');
  t.ok(certificate.spec.dnsNames.includes(`${service.metadata.name}.${service.metadata.namespace}.svc`), 'the name the API server checks');
  const volume = deployment.spec.template.spec.volumes.find((v: any) => v.secret);
  t.equal(volume.secret.secretName, certificate.spec.secretName);
  const mount = deployment.spec.template.spec.containers[0].volumeMounts.find((m: any) => m.name === volume.name);
  t.ok(deployment.spec.template.spec.containers[0].command.includes(`--tls-dir=${mount.mountPath}`));
  t.equal(find('MutatingWebhookConfiguration').metadata.annotations['cert-manager.io/inject-ca-from'], `${certificate.metadata.namespace}/${certificate.metadata.name}`);
});

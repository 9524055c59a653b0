import type { Test } from 'tap';
import { TEMPLATE_PATHS } from '../../../src/inject/workloads.ts';

// What every pod meshlet injected must look like, checked on the output's objects: the
// part of "valid" that is meshlet's responsibility, which the OpenAPI schema
// (test/helpers/kube-schema.ts) cannot know.

type Obj = Record<string, any>;

export function podTemplateOf(object: Obj): Obj | undefined {
  const path = TEMPLATE_PATHS[object.kind as string];
  if (path === undefined) return undefined;
  return path.reduce<Obj | undefined>((o, k) => o?.[k], object);
}

export function checkInjected(t: Test, object: Obj, mode: 'native' | 'classic'): void {
  const template = podTemplateOf(object);
  if (template === undefined) return;
  const name = `${object.kind} ${object.metadata?.name}`;
  if (template.metadata?.annotations?.['meshlet.io/inject'] === 'false') {
    t.notOk(template.metadata?.annotations?.['meshlet.io/status'], `${name}: opted out, not injected`);
    return;
  }
  checkPod(t, template, mode, name);
}

export function checkPod(t: Test, template: Obj, defaultMode: 'native' | 'classic', name: string): void {
  const spec = template.spec;
  const annotations = template.metadata?.annotations ?? {};
  const mode = annotations['meshlet.io/sidecar-mode'] ?? defaultMode;
  t.ok(annotations['meshlet.io/status'], `${name}: status annotation`);
  t.equal(annotations['prometheus.io/port'], '15020', `${name}: scraped on 15020`);
  const inits: Obj[] = spec.initContainers;
  const names = (list: Obj[] = []) => list.map((c) => c.name);
  const init = inits.find((c) => c.name === 'meshlet-init')!;
  t.same(init.securityContext.capabilities, { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] }, `${name}: init has NET_ADMIN and NET_RAW only`);
  t.equal(init.securityContext.runAsUser, 0, `${name}: init runs as root`);
  t.equal(init.securityContext.allowPrivilegeEscalation, false);
  t.same(init.command, ['meshlet', 'init']);
  const proxy = mode === 'native' ? inits.find((c) => c.name === 'meshlet-proxy') : spec.containers[0];
  t.equal(proxy?.name, 'meshlet-proxy', `${name}: the sidecar is where ${mode} mode puts it`);
  if (mode === 'native') {
    t.same(names(inits).slice(0, 2), ['meshlet-init', 'meshlet-proxy'], `${name}: init, then the native sidecar, before the app's init containers`);
    t.equal(proxy!.restartPolicy, 'Always');
    t.equal(proxy!.startupProbe.httpGet.port, 15020);
    t.notOk(names(spec.containers).includes('meshlet-proxy'));
  } else {
    t.equal(names(inits).at(-1), 'meshlet-init', `${name}: classic: interception after the app's own init containers`);
    t.same(proxy!.lifecycle.postStart.exec.command, ['meshlet', 'wait']);
    t.notOk(proxy!.restartPolicy);
  }
  const sc = proxy!.securityContext;
  t.same([sc.runAsUser, sc.runAsGroup, sc.runAsNonRoot, sc.readOnlyRootFilesystem, sc.allowPrivilegeEscalation], [1337, 1337, true, true, false], `${name}: sidecar as 1337, read-only, no escalation`);
  t.same(sc.capabilities, { drop: ['ALL'] });
  t.same([proxy!.readinessProbe.httpGet, proxy!.livenessProbe.httpGet], [{ path: '/healthz/ready', port: 15020 }, { path: '/healthz/live', port: 15020 }]);
  const env = Object.fromEntries((proxy!.env as Obj[]).map((e) => [e.name, e.value ?? e.valueFrom.fieldRef.fieldPath]));
  t.equal(env.MESHLET_WORKLOAD_NAMESPACE, 'metadata.namespace', `${name}: workload namespace from the downward API`);
  t.equal(env.MESHLET_WORKLOAD_APP, "metadata.labels['app']");
  t.equal(env.MESHLET_IDENTITY_DIR, '/var/run/secrets/meshlet');
  const volume = (spec.volumes as Obj[]).find((v) => v.name === 'meshlet-identity');
  t.ok(volume?.secret?.secretName || volume?.csi?.driver === 'csi.cert-manager.io', `${name}: identity volume`);
  // Under strict mTLS no app probe may still go to the app's own port over the network.
  if (env.MESHLET_INBOUND_MTLS === 'strict') {
    for (const c of [...spec.containers, ...inits].filter((c: Obj) => !c.name.startsWith('meshlet-'))) {
      for (const kind of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
        const probe = c[kind];
        if (probe === undefined || probe.exec) continue;
        t.same(probe.httpGet?.port, 15020, `${name}: ${c.name}'s ${kind} goes through the sidecar`);
        t.notOk(probe.tcpSocket || probe.grpc);
      }
    }
  }
}

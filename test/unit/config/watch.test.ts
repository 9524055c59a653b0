import { mkdtempSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { Config } from '../../../src/config/schema.ts';
import { ConfigWatcher } from '../../../src/config/watch.ts';
import { captureLog } from '../../helpers/capture-log.ts';

const until = async (check: () => boolean) => {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
  return check();
};

function watched(t: { teardown(fn: () => void): void }, first: string) {
  const dir = mkdtempSync(path.join(tmpdir(), 'meshlet-watch-'));
  const file = path.join(dir, 'meshlet.yaml');
  writeFileSync(file, first);
  const configs: Config[] = [];
  const { log, lines } = captureLog();
  const watcher = new ConfigWatcher(file, { env: {}, log, onConfig: (c) => configs.push(c), pollIntervalMs: 50 }).start();
  t.teardown(() => watcher.close());
  return { dir, file, configs, lines, watcher };
}

t.test('a changed file is loaded and handed on; an invalid one is refused with its problems and nothing changes', async (t) => {
  const w = watched(t, 'resilience:\n  defaults:\n    timeout: 1s\n');
  writeFileSync(w.file, 'resilience:\n  defaults:\n    timeout: 2s\n');
  t.ok(await until(() => w.configs.length === 1), 'the change was seen');
  t.equal(w.configs[0]!.resilience.defaults.timeout, 2000);

  writeFileSync(w.file, 'resilience:\n  defaults:\n    timeout: 2s\n    retries:\n      atempts: 3\n');
  t.ok(await until(() => w.lines.some((l) => l.msg === 'config reload refused; the configuration in force stays')));
  t.equal(w.configs.length, 1, 'no new configuration');
  const refused = w.lines.find((l) => l.msg === 'config reload refused; the configuration in force stays')!;
  t.match(JSON.stringify(refused.problems), /resilience\.defaults\.retries\.atempts: unknown field; did you mean attempts\?/);

  t.notOk(await w.watcher.reload('SIGHUP'), 'SIGHUP on the same invalid file: refused again');
  writeFileSync(w.file, 'resilience:\n  defaults:\n    timeout: 3s\n');
  t.ok(await until(() => w.configs.length === 2));
  t.equal(w.configs[1]!.resilience.defaults.timeout, 3000);
  t.ok(await w.watcher.reload('SIGHUP'), 'SIGHUP reloads an unchanged valid file too');
  t.equal(w.configs.length, 3);
});

t.test('a ConfigMap-style swap (a symlink renamed over the file) is seen', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'meshlet-watch-'));
  writeFileSync(path.join(dir, 'v1.yaml'), 'log:\n  level: info\n');
  writeFileSync(path.join(dir, 'v2.yaml'), 'log:\n  level: debug\n');
  const file = path.join(dir, 'meshlet.yaml');
  symlinkSync(path.join(dir, 'v1.yaml'), file);
  const configs: Config[] = [];
  const watcher = new ConfigWatcher(file, { env: {}, log: captureLog().log, onConfig: (c) => configs.push(c), pollIntervalMs: 50 }).start();
  t.teardown(() => watcher.close());
  symlinkSync(path.join(dir, 'v2.yaml'), path.join(dir, 'tmp-link'));
  renameSync(path.join(dir, 'tmp-link'), file);
  t.ok(await until(() => configs.length === 1));
  t.equal(configs[0]!.log.level, 'debug');
});

import t from 'tap';
import { errorLine, errorLines, parseOptions } from '../../src/args.ts';
import { isMeshletError, MeshletError } from '../../src/errors.ts';
import { closest, editDistance } from '../../src/suggest.ts';

// The flag parser and error format every subcommand shares.

const options = { config: { type: 'string' }, force: { type: 'boolean' }, verbose: { type: 'boolean', short: 'v' } } as const;

function usageError(argv: string[], negatable = false): string {
  try {
    parseOptions(argv, options, { command: 'thing', negatable });
  } catch (err) {
    if (isMeshletError(err, 'MESHLET_ERR_USAGE')) return err.message;
    throw err;
  }
  throw new Error(`expected a usage error for ${JSON.stringify(argv)}`);
}

t.test('values: strings, booleans, short flags, help, negation when allowed', async (t) => {
  t.same(parseOptions(['--config', 'a.yaml', '--force', '-v'], options, { command: 'thing' }), { config: 'a.yaml', force: true, verbose: true });
  t.same(parseOptions(['--config=--odd'], options, { command: 'thing' }), { config: '--odd' }, 'an inline value may start with -');
  t.same(parseOptions(['--config', '-'], options, { command: 'thing' }), { config: '-' }, "'-' alone is a value");
  t.same(parseOptions(['--config', '-1'], options, { command: 'thing' }), { config: '-1' }, 'a negative number is a value, for the value check to judge');
  t.same(parseOptions(['-h'], options, { command: 'thing' }), { help: true });
  t.same(parseOptions(['--help'], options, { command: 'thing' }), { help: true });
  t.same(parseOptions(['--no-force'], options, { command: 'thing', negatable: true }), { force: false });
  t.same(parseOptions([], options, { command: 'thing' }), {});
});

t.test('every mistake is a MESHLET_ERR_USAGE naming the flag', async (t) => {
  const cases: Array<[string[], string, boolean?]> = [
    [['--confg', 'x'], "unknown flag '--confg'; did you mean --config?"],
    [['--frobnicate'], "unknown flag '--frobnicate'"],
    [['-x'], "unknown flag '-x'"],
    [['--no-force'], "unknown flag '--no-force'; did you mean --force?"],
    [['--no-config'], "unknown flag '--no-config'; did you mean --config?", true],
    [['--config'], 'flag --config needs a value'],
    [['--config', '--force'], "flag --config needs a value, not the flag '--force' (write --config=--force if that is the value)"],
    [['--force=yes'], 'flag --force takes no value (write --force alone)'],
    [['--force=yes'], 'flag --force takes no value (write --force or --no-force)', true],
    [['--help=1'], 'flag --help takes no value (write --help alone)', true],
    [['extra'], "unexpected argument 'extra' (meshlet thing takes only flags)"],
    [['--', '--force'], "unexpected argument '--force' after '--' (meshlet thing takes only flags)"],
  ];
  for (const [argv, message, negatable] of cases) t.equal(usageError(argv, negatable), message, JSON.stringify(argv));
});

t.test('error lines: meshlet <command>: <CODE>: <text>, usage errors point to --help', async (t) => {
  t.same(errorLines('init', new MeshletError('MESHLET_ERR_USAGE', 'unknown flag')), ['meshlet init: MESHLET_ERR_USAGE: unknown flag (see meshlet init --help)']);
  t.same(errorLines('', new MeshletError('MESHLET_ERR_USAGE', "unknown command 'x'")), ["meshlet: MESHLET_ERR_USAGE: unknown command 'x' (see meshlet --help)"]);
  t.same(errorLines('proxy', new MeshletError('MESHLET_ERR_CONFIG', 'a: bad\nb: worse\n')), ['meshlet proxy: MESHLET_ERR_CONFIG: a: bad', 'meshlet proxy: MESHLET_ERR_CONFIG: b: worse'], 'one line per problem');
  t.equal(errorLine('ca issue', new MeshletError('MESHLET_ERR_CA', 'one\ntwo')), 'meshlet ca issue: MESHLET_ERR_CA: one two');
  t.equal(errorLine('ca issue', new Error('boom'), 'MESHLET_ERR_CA'), 'meshlet ca issue: MESHLET_ERR_CA: boom', 'the fallback code');
  t.equal(errorLine('init', Object.assign(new Error('no such file'), { code: 'ENOENT' })), 'meshlet init: ENOENT: no such file');
});

t.test('did you mean: transpositions, separators and case count as close; far names are not suggested', async (t) => {
  t.equal(editDistance('idel', 'idle'), 1, 'a swap is one edit');
  t.equal(editDistance('kitten', 'sitting'), 3);
  t.equal(editDistance('', 'abc'), 3);
  t.equal(closest('MESHLET_TCP_IDEL_TIMEOUT', ['MESHLET_TCP_IDLE_TIMEOUT', 'MESHLET_OUTBOUND_PORT']), 'MESHLET_TCP_IDLE_TIMEOUT');
  t.equal(closest('idle_timeout', ['idleTimeout', 'port']), 'idleTimeout');
  t.equal(closest('formatt', ['level']), undefined);
  t.equal(closest('x', ['init', 'proxy']), undefined);
  t.equal(closest('prox', ['init', 'proxy', 'ca', 'demo']), 'proxy');
});

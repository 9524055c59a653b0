// Subcommand dispatch only. Each subcommand loads its own modules, so `meshlet init`
// in the init container does not pay for the proxy's dependencies.
import { reportError, usage } from './args.ts';
import { didYouMean } from './suggest.ts';

const USAGE = `usage: meshlet <command> [options]

commands:
  init     install the traffic-interception rules in this network namespace
  proxy    run the sidecar proxy
  wait     wait until the proxy in this pod is ready (a start gate for the app)
  ca       create a CA and issue SPIFFE workload certificates (mutual TLS identities)
  inject   add the init container and the sidecar to Kubernetes manifests
  uninject remove what inject added
  webhook  serve the mutating admission webhook that injects pods as they are created
  demo     build a two-pod mesh in network namespaces on this machine and send traffic through it

Run 'meshlet <command> --help' for a command's options.`;

const commands: Record<string, () => Promise<(argv: string[], env: NodeJS.ProcessEnv) => Promise<number>>> = {
  init: async () => (await import('./iptables/init-command.ts')).initCommand,
  proxy: async () => (await import('./proxy/command.ts')).proxyCommand,
  wait: async () => (await import('./admin/wait-command.ts')).waitCommand,
  ca: async () => (await import('./tls/ca/command.ts')).caCommand,
  inject: async () => (await import('./inject/command.ts')).injectCommand,
  uninject: async () => (await import('./inject/command.ts')).uninjectCommand,
  webhook: async () => (await import('./webhook/command.ts')).webhookCommand,
  demo: async () => (await import('./demo/command.ts')).demoCommand,
};

const [name, ...rest] = process.argv.slice(2);
if (name === '--help' || name === '-h' || name === 'help') {
  process.stdout.write(`${USAGE}\n`);
} else if (name === undefined || !Object.hasOwn(commands, name)) {
  const names = Object.keys(commands);
  const problem = name === undefined ? `missing command: ${names.join(', ')}` : `unknown command '${name}'${didYouMean(name, names)}`;
  reportError('', usage(problem));
  process.exitCode = 2;
} else {
  const command = await commands[name]!();
  process.exitCode = await command(rest, process.env);
}

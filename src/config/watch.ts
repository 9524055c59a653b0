import { readFileSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { describeError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { Config } from './schema.ts';

export interface ConfigWatcherOptions {
  env: NodeJS.ProcessEnv;
  log: Logger;
  /** Called with each new configuration that loaded without a problem. */
  onConfig: (config: Config) => void;
  /** A safety net for volumes where file events are lost (fs.watch catches the usual changes). */
  pollIntervalMs?: number;
}

/**
 * Reloads the configuration file when it changes — written in place, or swapped by an
 * atomic symlink rename as Kubernetes does for ConfigMap volumes (so the directory is
 * watched, not the file) — and when reload() is called (SIGHUP). A file that does not
 * load is refused with every problem it has, and the configuration in force stays.
 */
export class ConfigWatcher {
  readonly file: string;
  readonly #options: Required<ConfigWatcherOptions>;
  #text: string;
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;

  /** `text`: the file as it was when the configuration in force was loaded. */
  constructor(file: string, options: ConfigWatcherOptions) {
    this.file = file;
    this.#options = { pollIntervalMs: 10_000, ...options };
    this.#text = this.#read() ?? '';
  }

  start(): this {
    try {
      this.#watcher = watch(path.dirname(this.file), { persistent: false }, () => this.#schedule());
      this.#watcher.on('error', (err) => this.#options.log.warn({ file: this.file, err: describeError(err) }, 'config file watch failed; polling only'));
    } catch (err) {
      this.#options.log.warn({ file: this.file, err: describeError(err) }, 'cannot watch the config file; polling only');
    }
    this.#poll = setInterval(() => this.#reloadIfChanged('file change'), this.#options.pollIntervalMs).unref();
    return this;
  }

  close(): void {
    this.#watcher?.close();
    clearInterval(this.#poll);
    clearTimeout(this.#debounce);
  }

  /** Loads the file again whatever its content (SIGHUP); true when the new configuration was taken. */
  async reload(why: string): Promise<boolean> {
    const text = this.#read();
    return text !== undefined && (await this.#apply(text, why));
  }

  #schedule(): void {
    // Editors and the kubelet write in several steps: act once they are done.
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => this.#reloadIfChanged('file change'), 100);
    this.#debounce.unref();
  }

  #reloadIfChanged(why: string): void {
    const text = this.#read();
    if (text !== undefined && text !== this.#text) void this.#apply(text, why);
  }

  async #apply(text: string, why: string): Promise<boolean> {
    this.#text = text;
    let config: Config;
    try {
      // Loaded on the first reload only: the proxy starts with an already validated
      // configuration and does not keep the schema library in memory until then.
      const { loadConfig } = await import('./load.ts');
      config = loadConfig({ file: this.file, env: this.#options.env });
    } catch (err) {
      this.#options.log.error({ file: this.file, trigger: why, problems: describeError(err).split('\n') }, 'config reload refused; the configuration in force stays');
      return false;
    }
    this.#options.onConfig(config);
    this.#options.log.info({ file: this.file, trigger: why }, 'config reloaded');
    return true;
  }

  #read(): string | undefined {
    try {
      return readFileSync(this.file, 'utf8');
    } catch (err) {
      this.#options.log.error({ file: this.file, err: describeError(err) }, 'cannot read the config file; the configuration in force stays');
      return undefined;
    }
  }
}

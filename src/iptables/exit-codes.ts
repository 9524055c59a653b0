import { isMeshletError } from '../errors.ts';

// `meshlet init` exit codes (documented in docs/init.md). An init container's exit code
// is often all that shows in `kubectl describe pod`, so each cause gets its own.
export const EXIT = {
  OK: 0,
  /** Anything not below (e.g. iptables-restore rejected the input for another reason). */
  FAILURE: 1,
  /** Unknown flag, malformed value, conflicting flags. */
  USAGE: 2,
  /** No iptables binary / no working backend. */
  NO_IPTABLES: 3,
  /** No CAP_NET_ADMIN: iptables said permission denied. */
  PERMISSION: 4,
  /** The kernel lacks the nat table, REDIRECT or a match used by the rules. */
  KERNEL: 5,
  /** --validate found that redirection does not work, or could not check it (e.g. not root). */
  VALIDATION: 6,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export function exitCodeFor(err: unknown): ExitCode {
  if (!isMeshletError(err)) return EXIT.FAILURE;
  switch (err.code) {
    case 'MESHLET_ERR_USAGE':
    case 'MESHLET_ERR_CONFIG':
      return EXIT.USAGE;
    case 'MESHLET_ERR_IPTABLES_MISSING':
      return EXIT.NO_IPTABLES;
    case 'MESHLET_ERR_IPTABLES_PERMISSION':
      return EXIT.PERMISSION;
    case 'MESHLET_ERR_IPTABLES_KERNEL':
      return EXIT.KERNEL;
    case 'MESHLET_ERR_VALIDATION':
      return EXIT.VALIDATION;
    default:
      return EXIT.FAILURE;
  }
}

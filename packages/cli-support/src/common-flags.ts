/**
 * The flag rows both CLIs have word for word: one definition each (a row a program words its own way
 * stays in that program's table).
 */
import { flag, type Flag } from './flags.js';
import { metricsFileArgument } from './metrics.js';

/** `-k, --insecure`: TLS certificates are not checked (the run warns). */
export function insecureFlag(): Flag {
  return flag({
    flags: '-k, --insecure',
    defaultText: 'off',
    apply: (on: boolean | undefined, options) => {
      if (on === true) options['tls'] = { rejectUnauthorized: false };
    },
    doc: 'do not verify TLS certificates (warns on stderr)',
  });
}

/** `-q, --quiet` and `-s, --silent` (curl's name for it); `what` says what else stays off. */
export function quietFlags(what: string): Flag[] {
  return [
    flag({ flags: '-q, --quiet', defaultText: 'off', doc: `nothing on stderr but errors (${what})` }),
    flag({ flags: '-s, --silent', defaultText: 'off', doc: 'the same as --quiet (curl -s)' }),
  ];
}

/** `--metrics-file <path>`, also read from the environment variable `env`. */
export function metricsFileFlag(env: string): Flag {
  return flag({
    flags: '--metrics-file <path>',
    parse: metricsFileArgument,
    defaultText: 'none',
    doc: `at the end of the run, write its Prometheus metrics to PATH (*.prom, atomically) for node-exporter's textfile collector (also: env ${env})`,
  });
}

/** `-V, --version` and `-h, --help` (commander's own, last in the table). */
export function versionAndHelpFlags(): Flag[] {
  return [
    flag({ flags: '-V, --version', builtin: 'version', doc: 'print the version' }),
    flag({ flags: '-h, --help', builtin: 'help', doc: 'print this help' }),
  ];
}

/**
 * The flag rows both CLIs have word for word: one definition each (a row a program words its own way
 * stays in that program's table).
 */
import { flag, type BuiltOptions, type Flag } from './flags.js';
import { metricsFileArgument } from './metrics.js';
import { collect, header, userAgent } from './parsers.js';

/** The `headers` option being built (a header name may hold a dot: not a path for `setPath`). */
export function headersOf(options: BuiltOptions): Record<string, string> {
  return (options['headers'] ??= {}) as Record<string, string>;
}

/**
 * `-A, --user-agent <name>`: the User-Agent header; `fallback` is the program's own (none: the
 * library's). Before `-H` in a table, so a `-H 'User-Agent: …'` wins.
 */
export function userAgentFlag(defaultText: string, fallback?: string): Flag {
  return flag({
    flags: '-A, --user-agent <name>',
    parse: userAgent,
    defaultText,
    apply: (name: string | undefined, options) => {
      const value = name ?? fallback;
      if (value !== undefined) headersOf(options)['user-agent'] = value;
    },
    doc: 'the User-Agent header',
  });
}

/**
 * `-H, --header <header>` (repeatable), for `program`'s messages; `removable`: `Name:` with no value
 * removes a default header.
 */
export function headerFlag(program: string, removable: boolean, doc: string): Flag {
  return flag({
    flags: '-H, --header <header>',
    parse: collect(header(program, removable)),
    defaultText: 'none',
    apply: (pairs: [string, string][] | undefined, options) => {
      for (const [name, value] of pairs ?? []) headersOf(options)[name] = value;
    },
    doc,
  });
}

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

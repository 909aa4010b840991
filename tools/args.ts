// A small argument parser for the CLI: --flag value, --flag=value, boolean flags, positionals.
import { flyfsError } from '../common/errors.js';

export interface ParsedArgs {
  positionals: string[];
  flags: Map<string, string[]>;
}

export function parseArgs(argv: readonly string[], booleans: readonly string[] = []): ParsedArgs {
  const positionals: string[] = [];
  const flags = new Map<string, string[]>();
  const add = (k: string, v: string): void => { flags.set(k, [...(flags.get(k) ?? []), v]); };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') { positionals.push(...argv.slice(i + 1)); break; }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const key = eq > 0 ? a.slice(2, eq) : a.slice(2);
      if (eq > 0) add(key, a.slice(eq + 1));
      else if (booleans.includes(key)) add(key, 'true');
      else {
        const v = argv[i + 1];
        if (v === undefined) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `--${key} needs a value`);
        add(key, v);
        i++;
      }
    } else if (/^-[a-zA-Z]+$/.test(a)) {
      for (const ch of a.slice(1)) add(ch, 'true');
    } else {
      positionals.push(a);
    }
  }
  return { positionals, flags };
}

export function flag(args: ParsedArgs, name: string): string | undefined {
  const v = args.flags.get(name);
  return v === undefined ? undefined : v[v.length - 1];
}

export function boolFlag(args: ParsedArgs, ...names: string[]): boolean {
  return names.some((n) => flag(args, n) === 'true');
}

export function intFlag(args: ParsedArgs, name: string, fallback: number): number {
  const v = flag(args, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw flyfsError('FLYFS_ERR_INVALID_ARGUMENT', `--${name} must be a non-negative integer`);
  return n;
}

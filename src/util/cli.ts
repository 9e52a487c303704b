/**
 * Command-line parsing, behind one module so moving to `@std/cli` is a
 * one-line change. Unknown flags are errors.
 *
 * @module
 */
import { parseArgs as nodeParseArgs } from "node:util";

/** One flag: its type, default and the line `--help` prints. */
export interface FlagSpec {
  /** `string` flags take a value; `boolean` flags do not. */
  type: "string" | "boolean";
  /** Value when the flag is absent. */
  default?: string | boolean;
  /** One line of help. */
  help: string;
}

/** Parsed flags by name. */
export type Flags = Record<string, string | boolean | undefined>;

/** Parses `args` against `spec`; throws a `TypeError` naming an unknown flag. */
export function parseFlags(args: string[], spec: Record<string, FlagSpec>): Flags {
  const options: Record<string, { type: "string" | "boolean"; default?: string | boolean }> = {};
  for (const [name, s] of Object.entries(spec)) {
    options[name] = s.default === undefined
      ? { type: s.type }
      : { type: s.type, default: s.default };
  }
  try {
    const { values } = nodeParseArgs({ args, options, strict: true, allowPositionals: false });
    return values as Flags;
  } catch (e) {
    throw new TypeError(`${(e as Error).message}; run with --help for the list of flags`);
  }
}

/** The `--help` text for `spec`. */
export function helpText(usage: string, spec: Record<string, FlagSpec>): string {
  const rows = Object.entries(spec).map(([name, s]) => {
    const flag = s.type === "string" ? `--${name} VALUE` : `--${name}`;
    const def = s.default === undefined || s.default === false ? "" : ` (default ${s.default})`;
    return `  ${flag.padEnd(28)}${s.help}${def}`;
  });
  return `${usage}\n\n${rows.join("\n")}`;
}

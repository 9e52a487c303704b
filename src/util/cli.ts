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
  /** A `string` flag that may be repeated: its value is the list of values given. */
  multiple?: boolean;
  /** One line of help. */
  help: string;
}

/** Parsed flags by name. */
export type Flags = Record<string, string | boolean | string[] | undefined>;

/** Parses `args` against `spec`; throws a `TypeError` naming an unknown flag. */
export function parseFlags(args: string[], spec: Record<string, FlagSpec>): Flags {
  const options: Record<
    string,
    { type: "string" | "boolean"; default?: string | boolean; multiple?: boolean }
  > = {};
  for (const [name, s] of Object.entries(spec)) {
    options[name] = { type: s.type };
    if (s.default !== undefined) options[name].default = s.default;
    if (s.multiple) options[name].multiple = true;
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
    const def = s.default === undefined || s.default === false || s.default === ""
      ? ""
      : ` (default ${s.default})`;
    return `  ${flag.padEnd(28)}${s.help}${def}`;
  });
  return `${usage}\n\n${rows.join("\n")}`;
}

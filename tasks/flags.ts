/**
 * What the tasks share on the command line: the flags every task has (`--debug`,
 * `--help`), the backend flags (`--backend`, `--native-lib`), parsing with `--help`
 * handled, and value parsers that throw a TypeError naming the flag, the value and what
 * is accepted.
 *
 * @module
 */
import { type Flags, type FlagSpec, helpText, parseFlags } from "../src/util/cli.ts";
import { parseBackendKind, selectBackend, type SelectedBackend } from "../src/backend/select.ts";

/** `--backend`. */
export const BACKEND_FLAG: Record<string, FlagSpec> = {
  backend: { type: "string", default: "auto", help: "auto | cpu | webgpu" },
};

/** `--native-lib`: where the CPU backend loads its native kernels from. */
export const NATIVE_LIB_FLAG: Record<string, FlagSpec> = {
  "native-lib": {
    type: "string",
    help: "native CPU kernels library (default: native/build/ of this checkout)",
  },
};

/** `--print-config`: print the resolved configuration (and where each value came from) and exit. */
export const PRINT_CONFIG_FLAG: Record<string, FlagSpec> = {
  "print-config": {
    type: "boolean",
    help: "print the resolved configuration (each setting: default, recipe or given) and exit",
  },
};

/** The flags of every task, listed last in `--help`. */
const COMMON_FLAGS: Record<string, FlagSpec> = {
  debug: {
    type: "boolean",
    help: "print the stack trace of an error, and the backend's details (paths, loader errors)",
  },
  help: { type: "boolean", help: "show this help" },
};

/**
 * Parses `args` against `spec` plus `--debug` and `--help`. `--help` prints the usage and
 * exits 0; a missing `required` flag prints it and exits 2.
 */
export function parseTaskFlags(
  usage: string,
  spec: Record<string, FlagSpec>,
  opts: { required?: readonly string[]; args?: readonly string[] } = {},
): Flags {
  const all = { ...spec, ...COMMON_FLAGS };
  const flags = parseFlags([...(opts.args ?? Deno.args)], all);
  const missing = (opts.required ?? []).some((k) => !flags[k]);
  if (flags.help || missing) {
    console.log(helpText(usage, all));
    Deno.exit(flags.help ? 0 : 2);
  }
  return flags;
}

/**
 * The backend that `--backend` and `--native-lib` ask for; with `--debug`, its details
 * (library paths, loader errors) go to stderr, one per line.
 */
export async function backendFromFlags(
  flags: Flags,
  kind: string = String(flags.backend),
): Promise<SelectedBackend> {
  const nativeLibrary = flags["native-lib"] === undefined ? undefined : String(flags["native-lib"]);
  const selected = await selectBackend(parseBackendKind(kind), { nativeLibrary });
  if (flags.debug) {
    for (const d of selected.facts.details) {
      console.error(`backend detail: ${d}`);
    }
  }
  return selected;
}

/** A positive integer flag, or undefined when absent. */
export function positiveInt(value: unknown, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new TypeError(`Cannot use --${flag} ${value}: give a positive integer`);
  }
  return n;
}

/** A comma-separated list of numbers, or undefined when absent. */
export function parseList(value: unknown, flag: string): number[] | undefined {
  if (value === undefined) return undefined;
  const list = String(value).split(",").map(Number);
  if (list.some((x) => !Number.isFinite(x))) {
    throw new TypeError(
      `Cannot use --${flag} ${value}: give comma-separated numbers such as 0.5,0.5,0.5`,
    );
  }
  return list;
}

/** `train` or `test`. */
export function parseSplit(value: string): "train" | "test" {
  if (value === "train" || value === "test") return value;
  throw new TypeError(`Cannot use --split ${value}: give train or test`);
}

/**
 * One typed configuration, three views: the resolver (defaults + checked overrides →
 * a frozen config), the command-line flags (one kebab-case flag per setting, parsed by the
 * default's type) and their `--help`. Pre-training, fine-tuning, the linear probe and the
 * reproduction are each one {@link defineConfig} call.
 *
 * Every failure has one wording:
 * - an unknown key: `Cannot configure pre-training: unknown setting "batchSize"` (TypeError);
 * - a wrong type: `Cannot configure pre-training: "strict" must be a boolean, got "yes"`;
 * - a failed check: `Cannot use batch 0 (--batch): give a positive integer` (RangeError for numbers
 *   out of range, TypeError for a value of the wrong kind, e.g. an unknown choice).
 *
 * @example
 * ```ts
 * import { assertEquals, assertThrows } from "./assert.ts";
 * import { defineConfig, positiveInt } from "./config_schema.ts";
 * const toy = defineConfig({
 *   what: "a toy",
 *   defaults: { batch: 64, name: "x" },
 *   settings: { batch: { help: "images per step", check: positiveInt }, name: { help: "run name" } },
 * });
 * assertEquals(toy.resolve({ batch: 8 }).batch, 8);
 * assertEquals(toy.resolve(toy.fromFlags({ batch: "16" })).batch, 16);
 * assertEquals(Object.keys(toy.flags()), ["batch", "name"]);
 * assertThrows(() => toy.resolve({ batch: 0 }), RangeError, "Cannot use batch 0 (--batch): give a positive integer");
 * assertThrows(() => toy.resolve({ size: 1 }), TypeError, 'unknown setting "size"');
 * ```
 *
 * @module
 */
import type { Flags, FlagSpec } from "./cli.ts";

/** The value types a setting may have (its default decides which). */
export type SettingValue = string | number | boolean | readonly number[];

/** One check of a setting's value. */
export interface Check<V> {
  /** True when `value` is acceptable. */
  ok(value: V): boolean;
  /** What to give instead, e.g. "give a positive integer". */
  give: string;
  /** `type`: the value is of the wrong kind (TypeError); `range` (default): RangeError. */
  kind?: "type" | "range";
}

/** How one setting is documented and checked. */
export interface Setting<V> {
  /** One line of `--help`. */
  help: string;
  /** Checks of the value, in order; the first failure is the error. */
  check?: Check<V> | readonly Check<V>[];
  /** `false`: not a command-line flag (library-only settings). Default true. */
  flag?: boolean;
}

/** The description {@link defineConfig} turns into a resolver, flags and help. */
export interface ConfigSchema<T extends { [K in keyof T]: SettingValue }> {
  /** What the errors say is being configured, e.g. "pre-training". */
  what: string;
  /** Every setting's default; the keys are the only accepted settings. */
  defaults: Readonly<T>;
  /** Help and checks per setting. */
  settings: { readonly [K in keyof T]: Setting<T[K]> };
  /** Checks across settings, run after each setting's own; throw to reject. */
  checkAll?: (config: T) => void;
  /** Named recipes: values applied over the defaults and under explicit overrides. */
  recipes?: RecipeTable<T>;
}

/**
 * Named recipes of a configuration: the setting `key` names one (`""`: none); its entry in
 * `table` is applied over the defaults, then the explicit overrides win.
 */
export interface RecipeTable<T> {
  /** The setting that names the recipe, e.g. "recipe". */
  key: keyof T & string;
  /** The values each recipe sets. */
  table: { readonly [name: string]: Readonly<Partial<T>> };
}

/** Where a resolved setting's value came from. */
export type SettingSource = "default" | "recipe" | "given";

/** A configuration's resolver, flags and help, derived from one {@link ConfigSchema}. */
export interface Config<T extends { [K in keyof T]: SettingValue }> {
  /** What the errors say is being configured. */
  readonly what: string;
  /** The defaults (frozen). */
  readonly defaults: Readonly<T>;
  /**
   * The defaults with `overrides` applied and checked, frozen (lists too). `undefined`
   * values are ignored; an unknown key or a wrong type is a TypeError.
   */
  resolve(overrides?: Partial<Record<string, unknown>>): T;
  /**
   * One flag per setting (kebab-case) and its help; the default is in the help text only,
   * so a parsed flag is one the user gave (and overrides a recipe).
   */
  flags(): Record<string, FlagSpec>;
  /** The names of the recipes (empty when the configuration has none). */
  readonly recipeNames: readonly string[];
  /** The values recipe `name` sets; an unknown name is a TypeError listing the recipes. */
  recipe(name: string): Readonly<Partial<T>>;
  /**
   * The resolved `config` one setting a line, `key = value  (source)`, where the source says
   * whether `overrides` gave it, its recipe set it, or it is the default.
   */
  describe(config: T, overrides?: Partial<Record<string, unknown>>): string;
  /**
   * The overrides that parsed `flags` give: numbers, comma lists of numbers (empty: `[]`),
   * booleans when given, strings as written.
   */
  fromFlags(flags: Flags): Partial<T>;
}

/** `camelCase` → `kebab-case`. */
export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** Builds the resolver, flags and help of one configuration. */
export function defineConfig<T extends { [K in keyof T]: SettingValue }>(
  schema: ConfigSchema<T>,
): Config<T> {
  const { what, settings, checkAll, recipes } = schema;
  const defaults = freeze({ ...schema.defaults } as T);
  const keys = Object.keys(defaults) as (keyof T & string)[];
  const flagKeys = keys.filter((k) => settings[k].flag !== false);

  const typeName = (v: SettingValue): string =>
    Array.isArray(v) ? "list of numbers" : typeof v === "number" ? "finite number" : typeof v;
  const hasType = (want: SettingValue, v: unknown): boolean => {
    if (Array.isArray(want)) {
      return Array.isArray(v) && v.every((x) => typeof x === "number" && Number.isFinite(x));
    }
    if (typeof want === "number") return typeof v === "number" && Number.isFinite(v);
    return typeof v === typeof want;
  };

  const recipeNames = Object.freeze(Object.keys(recipes?.table ?? {}));
  const recipe = (name: string): Readonly<Partial<T>> => {
    if (recipes && Object.hasOwn(recipes.table, name)) return recipes.table[name];
    const list = recipeNames.length ? `give ${listOf(recipeNames)}` : `${what} has no recipes`;
    throw new TypeError(`Cannot use recipe ${show(name)}: ${list}`);
  };
  /** The recipe that `overrides` (or the default) names, or null. */
  const recipeOf = (overrides: Partial<Record<string, unknown>>): Partial<T> | null => {
    if (!recipes) return null;
    const name = overrides[recipes.key] ?? defaults[recipes.key];
    if (name === "") return null;
    if (typeof name !== "string") return null; // the type check below names the problem
    return recipe(name);
  };

  return {
    what,
    defaults,
    recipeNames,
    recipe,
    resolve(overrides = {}) {
      const cfg = { ...defaults } as Record<string, unknown>;
      const layers = [recipeOf(overrides) ?? {}, overrides] as Record<string, unknown>[];
      for (const [k, v] of layers.flatMap((o) => Object.entries(o))) {
        if (v === undefined) continue;
        if (!Object.hasOwn(defaults, k)) {
          throw new TypeError(`Cannot configure ${what}: unknown setting "${k}"`);
        }
        const want = defaults[k as keyof T] as SettingValue;
        if (!hasType(want, v)) {
          throw new TypeError(
            `Cannot configure ${what}: "${k}" must be a ${typeName(want)}, got ${show(v)}`,
          );
        }
        cfg[k] = v;
      }
      for (const k of keys) {
        const checks = settings[k].check;
        for (const c of checks === undefined ? [] : Array.isArray(checks) ? checks : [checks]) {
          const v = cfg[k] as T[typeof k];
          if (c.ok(v)) continue;
          const Err = c.kind === "type" ? TypeError : RangeError;
          // a command-line setting is named by its flag too, for the person who typed it
          const flag = flagKeys.includes(k) ? ` (--${kebab(k)})` : "";
          throw new Err(`Cannot use ${k} ${show(v)}${flag}: ${c.give}`);
        }
      }
      const c = cfg as T;
      checkAll?.(c);
      return freeze(c);
    },
    flags() {
      const spec: Record<string, FlagSpec> = {};
      for (const k of flagKeys) {
        const v = defaults[k] as SettingValue;
        const help = settings[k].help;
        const def = Array.isArray(v) ? v.join(",") : String(v);
        spec[kebab(k)] = typeof v === "boolean" || def === ""
          ? { type: typeof v === "boolean" ? "boolean" : "string", help }
          : { type: "string", help: `${help} (default ${def})` };
      }
      return spec;
    },
    describe(config, overrides = {}) {
      const fromRecipe = recipeOf(overrides) ?? {};
      const width = Math.max(...keys.map((k) => k.length));
      return keys.map((k) => {
        const src: SettingSource = overrides[k] !== undefined
          ? "given"
          : Object.hasOwn(fromRecipe, k)
          ? "recipe"
          : "default";
        return `${k.padEnd(width)} = ${show(config[k])}  (${src})`;
      }).join("\n");
    },
    fromFlags(flags) {
      const out: Record<string, unknown> = {};
      for (const k of flagKeys) {
        const raw = flags[kebab(k)];
        if (raw === undefined) continue;
        const want = defaults[k] as SettingValue;
        if (typeof want === "boolean") {
          if (raw) out[k] = true;
        } else if (Array.isArray(want)) {
          out[k] = raw === "" ? [] : String(raw).split(",").map(flagNumber(k));
        } else if (typeof want === "number") out[k] = flagNumber(k)(String(raw));
        else out[k] = String(raw);
      }
      return out as Partial<T>;
    },
  };
}

/** A number typed on the command line; anything else is a TypeError naming the flag. */
function flagNumber(key: string): (raw: string) => number {
  return (raw) => {
    const n = raw.trim() === "" ? NaN : Number(raw);
    if (!Number.isFinite(n)) {
      throw new TypeError(`Cannot use --${kebab(key)} ${raw}: give a number`);
    }
    return n;
  };
}

/** A value as the errors quote it: strings in quotes, lists in brackets. */
function show(v: unknown): string {
  if (typeof v === "number") return String(v);
  if (Array.isArray(v)) return `[${v.join(",")}]`;
  return JSON.stringify(v) ?? String(v);
}

/** `c` frozen, with its lists copied and frozen too. */
function freeze<T>(c: T): T {
  const o = c as Record<string, unknown>;
  for (const [k, v] of Object.entries(o)) if (Array.isArray(v)) o[k] = Object.freeze([...v]);
  return Object.freeze(c);
}

// ---- checks ---------------------------------------------------------------------------

/** A check from a predicate and what to give instead. */
export function check<V>(ok: (value: V) => boolean, give: string, kind?: "type"): Check<V> {
  return kind ? { ok, give, kind } : { ok, give };
}

/** An integer ≥ 1. */
export const positiveInt: Check<number> = check(
  (v) => Number.isInteger(v) && v >= 1,
  "give a positive integer",
);

/** An integer ≥ 0. */
export const nonNegativeInt: Check<number> = check(
  (v) => Number.isInteger(v) && v >= 0,
  "give an integer >= 0",
);

/** A finite number ≥ 0. */
export const nonNegative: Check<number> = check(
  (v) => Number.isFinite(v) && v >= 0,
  "give a finite number >= 0",
);

/** A finite number > 0. */
export const positive: Check<number> = check(
  (v) => Number.isFinite(v) && v > 0,
  "give a finite number > 0",
);

/** A value in [0, 1). */
export const fraction: Check<number> = check((v) => v >= 0 && v < 1, "give a value in [0, 1)");

/** A value in [0, 1]. */
export const probability: Check<number> = check((v) => v >= 0 && v <= 1, "give a value in [0, 1]");

/** One of `choices` (a TypeError otherwise): "give stop or skip". */
export function oneOf<V extends string>(...choices: readonly V[]): Check<V> {
  return check((v) => choices.includes(v), `give ${listOf(choices)}`, "type");
}

/** "a or b", "one of a, b or c". */
function listOf(choices: readonly string[]): string {
  const shown = choices.map((c) => c === "" ? '""' : c);
  return shown.length <= 2
    ? shown.join(" or ")
    : `one of ${shown.slice(0, -1).join(", ")} or ${shown.at(-1)}`;
}

/** A non-empty string; `give` says what, e.g. "give the checkpoint to fine-tune". */
export function nonEmpty(give: string): Check<string> {
  return check((v) => v.length > 0, give, "type");
}

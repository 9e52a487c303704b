/**
 * The one error class of the data layer.
 *
 * @module
 */

/**
 * A dataset could not be opened or read. The message names the spec or file,
 * the problem, and the fix.
 */
export class DataError extends Error {
  /** Builds the error; `message` names the file or spec, the problem and the fix. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DataError";
  }
}

/**
 * One image file could not be read (corrupt, truncated, empty, vanished): the pipeline
 * skips it with a warning and a count. Without skipping it is an ordinary DataError.
 */
export class BadImageError extends DataError {
  /** Builds the error for `path`, unreadable because `why`. */
  constructor(readonly path: string, readonly why: string) {
    super(
      `Cannot decode ${path}: ${why}; remove or replace the file (skipped unless --strict-data)`,
    );
    this.name = "BadImageError";
  }
}

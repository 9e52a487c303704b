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

/**
 * Array types shared by the plain-TypeScript CPU ops.
 *
 * @module
 */

/**
 * A float buffer an op reads or writes. The backend passes `Float32Array` views;
 * the finite-difference tests pass `Float64Array` so gradients can be checked tightly.
 */
export type FloatArray = Float32Array | Float64Array;

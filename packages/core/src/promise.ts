/**
 * Promises whose resolving functions are taken without an executor closure per call.
 */

/** `new Promise(capture)` hands out its resolving functions here (no executor closure per call). */
let capturedResolve: ((value: unknown) => void) | undefined;
let capturedReject: ((error: unknown) => void) | undefined;
function capture(resolve: (value: unknown) => void, reject: (error: unknown) => void): void {
  capturedResolve = resolve;
  capturedReject = reject;
}

/** Returns a new promise and its resolving functions in `capturedResolve` / `capturedReject`. */
export function capturingPromise<T>(): Promise<T> {
  return new Promise<T>(capture as (resolve: (value: T) => void, reject: (error: unknown) => void) => void);
}

/** Takes the resolving functions of the last {@link capturingPromise}. */
export function takeResolve(): (value: unknown) => void {
  const resolve = capturedResolve!;
  capturedResolve = undefined;
  return resolve;
}

/** Takes the resolving functions of the last {@link capturingPromise}. */
export function takeReject(): (error: unknown) => void {
  const reject = capturedReject!;
  capturedReject = undefined;
  return reject;
}

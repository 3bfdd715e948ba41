/** `If-Match` on live changes: a change applies only to the version the caller last read. */
import { PreconditionFailedError } from '../errors.ts';

/**
 * Whether an `If-Match` header holds for something at `version` (undefined:
 * it does not exist): one of its tags is that version, quoted (weak or not),
 * or `*` for anything that exists.
 */
export function ifMatchHolds(ifMatch: string, version: number | undefined): boolean {
  return ifMatch.split(',').map((tag) => tag.trim().replace(/^W\//, ''))
    .some((tag) => version !== undefined && (tag === '*' || tag === `"${version}"`));
}

/** Throws 412 unless `ifMatch` (when sent) holds for `what` at `version` (undefined: it does not exist). */
export function checkIfMatch(what: string, version: number | undefined, ifMatch: string | undefined): void {
  if (ifMatch === undefined || ifMatchHolds(ifMatch, version)) return;
  throw new PreconditionFailedError(version === undefined
    ? `${what} does not exist, so If-Match ${ifMatch} cannot match`
    : `${what} is at version "${version}", not ${ifMatch}`);
}

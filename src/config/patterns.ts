/**
 * Regular expressions from configuration (a switch case's `matches`) run on
 * request headers and parameters, so none may take more than linear time on
 * what a client sends: they are compiled for V8's linear-time engine (the `l`
 * flag, RE2's guarantees and limits: no backreferences, no lookaround), which
 * refuses any pattern that could backtrack catastrophically.
 */
import v8 from 'node:v8';

// The engine ships in V8 behind a flag; setting it only makes the `l` flag available and
// changes no other expression (it is not the flag that moves excessive backtracks over).
v8.setFlagsFromString('--enable-experimental-regexp-engine');

/** Longest text a pattern is matched against; longer values do not match. */
export const MAX_MATCHED_LENGTH = 1024;

/**
 * The pattern as an expression that must match the whole value, in linear time; throws an
 * Error saying why a pattern is refused.
 */
export function linearPattern(pattern: string): RegExp {
  try {
    return new RegExp(`^(?:${pattern})$`, 'l');
  } catch (error) {
    const reason = (error as Error).message.replace(/^Invalid regular expression: \/.*\/l: /, '');
    if (/linear time/i.test(reason)) throw new Error(`'${pattern}' cannot run in linear time (backreferences and lookaround are refused): it could backtrack catastrophically`);
    throw new Error(`'${pattern}' is not a valid regular expression: ${reason}`);
  }
}

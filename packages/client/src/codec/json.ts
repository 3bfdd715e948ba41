/**
 * JSON as V2 peers write it. Clients send INT64/UINT64 elements as plain JSON
 * numbers (Triton's Python client writes `1152921504606846976`), which
 * `JSON.parse` would round to the nearest double; and Python's JSON writers
 * emit bare `NaN`, `Infinity` and `-Infinity`. Both are read here, exactly,
 * without slowing the common case: the exact reading (a reviver, several
 * times slower) runs only for a document that needs it.
 */

const INTEGER_SOURCE = /^-?\d+$/;
const NON_FINITE = /NaN|Infinity/;

/**
 * Parses JSON text as `JSON.parse` does, at its speed: integers beyond 2^53
 * are rounded. Bare `NaN`, `Infinity` and `-Infinity` outside strings are
 * read as the strings "NaN", "Infinity" and "-Infinity", the form the V2
 * datatypes accept for floats. Throws a SyntaxError for anything else that
 * is not JSON. Where an exact 64-bit integer is wanted, `parseJsonExact` reads
 * the text again: the decoder asks for that only when it meets a rounded one.
 */
export function parseJson(text: string): unknown {
  return withNonFinite(text, (json) => JSON.parse(json));
}

/** As `parseJson`, but integer literals beyond 2^53 come back as `bigint`, exactly as written. */
export function parseJsonExact(text: string): unknown {
  // Node 24's reviver receives each primitive's source text.
  return withNonFinite(text, (json) => JSON.parse(json, (_key, value: unknown, context?: { source?: string }) => {
    if (typeof value === 'number' && !Number.isSafeInteger(value) && context?.source !== undefined && INTEGER_SOURCE.test(context.source)) {
      return BigInt(context.source);
    }
    return value;
  }));
}

function withNonFinite(text: string, parse: (json: string) => unknown): unknown {
  try {
    return parse(text);
  } catch (error) {
    if (!NON_FINITE.test(text)) throw error;
    return parse(quoteNonFinite(text));
  }
}

/** Quotes bare NaN, Infinity and -Infinity that stand outside strings. */
function quoteNonFinite(text: string): string {
  let out = '';
  let start = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (inString) {
      if (char === '\\') i++;
      else if (char === '"') inString = false;
      continue;
    }
    if (char === '"') {
      inString = true;
      continue;
    }
    const word = text.startsWith('NaN', i) ? 'NaN' : text.startsWith('-Infinity', i) ? '-Infinity' : text.startsWith('Infinity', i) ? 'Infinity' : undefined;
    if (word !== undefined) {
      out += `${text.slice(start, i)}"${word}"`;
      i += word.length - 1;
      start = i + 1;
    }
  }
  return out + text.slice(start);
}

const BIGINT_MARK = /"\u2063bigint:(-?\d+)"/g;

/** `JSON.stringify` for messages about values a client sent, which may hold bigints (written as the integers they are). */
export function jsonText(value: unknown): string {
  const text = JSON.stringify(value, (_key, item: unknown) => (typeof item === 'bigint' ? `\u2063bigint:${item}` : item));
  return text === undefined ? String(value) : text.replace(BIGINT_MARK, '$1');
}

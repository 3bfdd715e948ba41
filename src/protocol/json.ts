/**
 * JSON as V2 peers write it. Clients send INT64/UINT64 elements as plain JSON
 * numbers (Triton's Python client writes `1152921504606846976`), which
 * `JSON.parse` would round to the nearest double; and Python's JSON writers
 * emit bare `NaN`, `Infinity` and `-Infinity`. Both are read here, exactly,
 * without slowing the common case.
 */

/**
 * An integer literal too long to be sure it is safe (16 or more digits),
 * standing as a whole value: after `[`, `,`, `:` or white space, before `,`,
 * `]`, `}` or white space. A float (`0.10000000149011612`) never matches, so
 * typical float payloads take the plain `JSON.parse` path.
 */
const LONG_INTEGER = /[[,:\s]-?\d{16,}[\s,\]}]/;
const INTEGER_SOURCE = /^-?\d+$/;
const NON_FINITE = /NaN|Infinity/;

/**
 * Parses JSON text. Integer literals beyond 2^53 come back as `bigint`,
 * exactly as written; every other number as a `number`. Bare `NaN`,
 * `Infinity` and `-Infinity` outside strings are read as the strings "NaN",
 * "Infinity" and "-Infinity", the form the V2 datatypes accept for floats.
 * Throws a SyntaxError for anything else that is not JSON.
 */
export function parseJson(text: string): unknown {
  try {
    return parseExact(text);
  } catch (error) {
    if (!NON_FINITE.test(text)) throw error;
    return parseExact(quoteNonFinite(text));
  }
}

function parseExact(text: string): unknown {
  if (!LONG_INTEGER.test(text)) return JSON.parse(text);
  // Node 24's reviver receives each primitive's source text.
  return JSON.parse(text, (_key, value: unknown, context?: { source?: string }) => {
    if (typeof value === 'number' && !Number.isSafeInteger(value) && context?.source !== undefined && INTEGER_SOURCE.test(context.source)) {
      return BigInt(context.source);
    }
    return value;
  });
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

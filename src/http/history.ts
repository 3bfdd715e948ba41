/**
 * What the statistics-history endpoints of routes and models share: the query (`window`,
 * `last`), read with messages naming the parameter, and the bucket's schema.
 */
import { Type } from '@sinclair/typebox';
import { InvalidInputError } from '../errors.ts';
import { HISTORY_WINDOWS, isHistoryWindow, type HistoryWindow } from '../experiments/history.ts';

const WINDOWS = Object.keys(HISTORY_WINDOWS);
const DEFAULT_LAST = 60;

export const HistoryQuery = Type.Object({
  window: Type.Optional(Type.String({ enum: WINDOWS, description: `Bucket width: ${Object.entries(HISTORY_WINDOWS).map(([name, { keep }]) => `${name} (the last ${keep} kept)`).join(', ')}. Default 1m.` })),
  last: Type.Optional(Type.String({ pattern: '^[0-9]+$', description: `How many buckets, up to the one in progress (the last, marked partial). Default ${DEFAULT_LAST}; at most the window's kept buckets plus the one in progress.` })),
});

export interface HistoryQueryParams { window?: unknown; last?: unknown }

/** The query's window and bucket count; a 400 naming the parameter when either is wrong. */
export function historyQuery(query: HistoryQueryParams): { window: HistoryWindow; last: number } {
  const window = query.window ?? '1m';
  if (typeof window !== 'string' || !isHistoryWindow(window)) throw new InvalidInputError(`window: must be one of ${WINDOWS.join(', ')}`);
  const most = HISTORY_WINDOWS[window].keep + 1;
  const text = query.last ?? String(DEFAULT_LAST);
  const last = typeof text === 'string' && /^[0-9]{1,6}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(last) || last < 1 || last > most) throw new InvalidInputError(`last: must be a whole number from 1 to ${most} (buckets of ${window})`);
  return { window, last };
}

const Milliseconds = Type.Union([Type.Number(), Type.Null()]);

export const HistoryBuckets = Type.Array(Type.Object({
  start: Type.String({ format: 'date-time', description: 'When the bucket starts (aligned to the wall clock: whole 10 s, minutes or hours).' }),
  requests: Type.Integer(),
  errors: Type.Integer(),
  errorRate: Type.Union([Type.Number(), Type.Null()], { description: 'errors / requests; null without requests.' }),
  latencyMs: Type.Object({ p50: Milliseconds, p95: Milliseconds, p99: Milliseconds }, { description: "Percentiles of the bucket's successful requests, within 2% (null without any)." }),
  partial: Type.Optional(Type.Literal(true, { description: 'The bucket in progress.' })),
}), { description: 'Oldest first, empty buckets included.' });

export const HISTORY_DESCRIPTION = 'Buckets are kept per name and width in a ring (10s: 90, 1m: 180, 1h: 72, at most 16 KB a name); stats/reset does not clear them.';

/**
 * Live changes shared through Redis: one versioned document (every live route
 * and model change, as the state file holds them) in a hash, `version` and
 * `document`. A write is a compare-and-swap on the version, done by a Lua
 * script that also publishes the new version on `<key>:changes` as a hint.
 * Replicas re-read on each hint, on every (re)connection and on a poll, so a
 * lost hint costs at most one poll interval. Redis decides nothing but the
 * order of writes: no membership, no placement.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { StoreUnavailableError, withRetryAfter } from '../errors.ts';
import type { RouteState } from './document.ts';
import type { ConfigStore } from './store.ts';

/** Version in `ARGV[1]` still current (0: no document): write `ARGV[2]`/`ARGV[3]`, publish, 1; else 0. */
const COMPARE_AND_SWAP = `
local current = redis.call('HGET', KEYS[1], 'version')
if (current or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'document', ARGV[3])
redis.call('PUBLISH', KEYS[2], ARGV[2])
return 1
`;

export interface RedisStoreOptions {
  readonly url: string;
  readonly key: string;
  readonly pollMs: number;
}

export class RedisStore implements ConfigStore {
  readonly shared = true;
  readonly #client: Redis;
  readonly #subscriber: Redis;
  readonly #key: string;
  readonly #channel: string;
  readonly #pollMs: number;
  #hint: () => void = () => undefined;
  #poll: NodeJS.Timeout | undefined;
  #up = false;
  #reason = 'not connected yet';

  constructor(options: RedisStoreOptions) {
    const common: RedisOptions = {
      lazyConnect: true,
      // A command while disconnected fails at once (an admin write answers 503) instead of waiting in a queue.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 2000,
      commandTimeout: 2000,
      // Reconnect for ever, backing off to 1 s: a replica must find Redis again by itself.
      retryStrategy: (times) => Math.min(50 * times, 1000),
      autoResubscribe: false,
    };
    this.#key = options.key;
    this.#channel = `${options.key}:changes`;
    this.#pollMs = options.pollMs;
    this.#client = new Redis(options.url, { ...common, connectionName: 'modelgate' });
    this.#subscriber = new Redis(options.url, { ...common, connectionName: 'modelgate-hints' });
    this.#client.defineCommand('modelgateSwap', { numberOfKeys: 2, lua: COMPARE_AND_SWAP });
    this.#client.on('ready', () => {
      this.#up = true;
      this.#hint();
    });
    this.#client.on('error', (error: Error) => this.#down(error));
    this.#client.on('close', () => this.#down(new Error('connection closed')));
    // ioredis resubscribes by itself only through its offline queue, which is off: subscribe on each connection.
    this.#subscriber.on('ready', () => {
      this.#subscriber.subscribe(this.#channel).then(() => this.#hint(), () => undefined);
    });
    this.#subscriber.on('message', () => this.#hint());
    this.#subscriber.on('error', () => undefined);
  }

  get up(): boolean {
    return this.#up;
  }

  /** Connects both connections; resolves even when Redis is down (they keep trying). */
  async connect(timeoutMs = 2000): Promise<void> {
    const attempt = (redis: Redis) => redis.connect().catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([attempt(this.#client), attempt(this.#subscriber)]),
      new Promise((resolve) => { timer = setTimeout(resolve, timeoutMs); }),
    ]);
    clearTimeout(timer);
  }

  async read(): Promise<RouteState | undefined> {
    const [version = null, text = null] = await this.#call(() => this.#client.hmget(this.#key, 'version', 'document'));
    if (version === null || text === null) return undefined;
    let document: RouteState | undefined;
    try {
      document = JSON.parse(text) as RouteState;
    } catch {
      document = undefined;
    }
    if (document?.format !== 1 || document.counter !== Number(version)) {
      this.#reason = `the Redis key '${this.#key}' does not hold a modelgate document`;
      throw withRetryAfter(new StoreUnavailableError(this.#reason), 2);
    }
    return document;
  }

  async write(document: RouteState, expected: number): Promise<boolean> {
    const swap = (this.#client as Redis & { modelgateSwap(...args: (string | number)[]): Promise<number> }).modelgateSwap;
    const written = await this.#call(() => swap.call(this.#client, this.#key, this.#channel, String(expected), String(document.counter), JSON.stringify(document)));
    return written === 1;
  }

  watch(hint: () => void): void {
    this.#hint = hint;
    this.#poll = setInterval(hint, this.#pollMs);
    this.#poll.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.#poll);
    this.#hint = () => undefined;
    this.#client.disconnect();
    this.#subscriber.disconnect();
  }

  /** Runs a command; a failure is the 503 an admin write answers while Redis is away. */
  async #call<T>(command: () => Promise<T>): Promise<T> {
    try {
      const result = await command();
      this.#up = true;
      return result;
    } catch (error) {
      this.#down(error as Error);
      throw withRetryAfter(new StoreUnavailableError(this.#reason), 2);
    }
  }

  #down(error: Error): void {
    this.#up = this.#client.status === 'ready' && !/closed|ECONNREFUSED|timed out|writeable/i.test(error.message);
    if (!this.#up) this.#reason = /timed out/i.test(error.message) ? 'Redis did not answer in time' : 'Redis is not reachable';
    // Reachable, but the command failed (a key of another type, a read-only replica): say what Redis said.
    else this.#reason = `Redis refused the command: ${error.message.slice(0, 200)}`;
  }
}

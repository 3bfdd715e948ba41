/**
 * What the graph routes (ensemble, switch, cascade) share: each records its
 * nodes (members, cases, steps) into the route's statistics and metrics, and
 * works its signature out once from its targets' (again after a failure).
 */
import type { Signature } from '@modelgate/client/codec';
import type { RouteStats } from '../experiments/stats.ts';
import { SignatureOnce } from './signature.ts';
import type { SpanAttributes } from '../trace.ts';
import type { RouteObserver } from './split.ts';
import { inSpan, type InferContext } from './target.ts';

/** The part every graph target shares: its key, its nodes' recorder, its signature worked out once. */
export abstract class GraphTarget {
  readonly key: string;
  protected readonly nodes: NodeRecorder;
  readonly #signature: SignatureOnce;

  constructor(key: string, stats: RouteStats, observer: RouteObserver | undefined) {
    this.key = key;
    this.nodes = new NodeRecorder(key, stats, observer);
    // Lazily: the subclass's fields are set by the time anyone asks.
    this.#signature = new SignatureOnce(() => this.makeSignature());
  }

  signature(): Promise<Signature> {
    return this.#signature.get();
  }

  knownSignature(): Signature | undefined {
    return this.#signature.known;
  }

  /** Works the signature out from the nodes' signatures; rejects saying which nodes disagree. */
  protected abstract makeSignature(): Promise<Signature>;
}

export class NodeRecorder {
  readonly #route: string;
  readonly #stats: RouteStats;
  readonly #observer: RouteObserver | undefined;

  constructor(route: string, stats: RouteStats, observer: RouteObserver | undefined) {
    this.#route = route;
    this.#stats = stats;
    this.#observer = observer;
  }

  /**
   * Settles as `work` does, recording the node's request (for the caller's tenant, if any), its
   * latency or its failure; a traced request gets the node's span (`span`, with `attributes`),
   * and `work` the context to hand its target, the span in it.
   */
  async timed<T>(node: string, context: InferContext, span: string, attributes: SpanAttributes, work: (context: InferContext) => Promise<T>): Promise<T> {
    const started = performance.now();
    const tenant = context.flow?.name;
    try {
      const result = await inSpan(context, span, { 'modelgate.route': this.#route, 'modelgate.node': node, ...attributes }, work);
      this.#record(node, performance.now() - started, false, tenant);
      return result;
    } catch (error) {
      this.#record(node, performance.now() - started, true, tenant);
      throw error;
    }
  }

  /** A cascade step ran on `rows` rows and answered `accepted` of them. */
  rows(step: string, rows: number, accepted: number): void {
    this.#stats.recordRows(step, rows, accepted);
    this.#observer?.rows?.(this.#route, step, rows, accepted);
  }

  #record(node: string, milliseconds: number, failed: boolean, tenant: string | undefined): void {
    this.#stats.recordVariant(node, milliseconds, failed, tenant);
    this.#observer?.node?.(this.#route, node, milliseconds / 1000, failed, tenant);
  }
}

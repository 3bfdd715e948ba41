/** A one-shot broadcast, re-armed after each notify: `wait()` resolves at the next `notify()`. */
export class Signal {
  #waiters: Array<() => void> = [];

  wait(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

/**
 * Programs from Debian's packages that some tests drive (redis-server, nginx, haproxy):
 * found on PATH or in the sbin folders, started on free loopback ports, stopped at the
 * end of the test. `.ci/run` installs them; without one, its tests are skipped with a
 * message naming it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';

import { freePort } from '../../bench/ports.ts';

export { freePort };

/** What helpers that start something need of a tap test: a place to stop it. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

const FOLDERS = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin', '/sbin'];

/** The program's path, or undefined when it is not installed. */
export function findProgram(name: string): string | undefined {
  for (const folder of FOLDERS) {
    const file = path.join(folder, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch { /* not here */ }
  }
  return undefined;
}

/** tap's skip option for tests that need `name`: false when it is installed. */
export function skipWithout(name: string, debianPackage = name): string | false {
  return findProgram(name) === undefined ? `${name} is not installed (Debian package ${debianPackage}; .ci/run installs it)` : false;
}

/** Resolves once something accepts connections on the port; rejects after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A child process that is killed at the end of the test if still running. */
export interface Child {
  readonly process: ChildProcess;
  /** Its output so far, for failure messages. */
  output(): string;
  /** Sends `signal` (default: the one given at start) and resolves when the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** `signal` ends it at the end of the test (nginx: SIGTERM, as SIGKILL would leave its workers running). */
export function startChild(t: Teardown, program: string, args: readonly string[], env?: NodeJS.ProcessEnv, signal: NodeJS.Signals = 'SIGKILL'): Child {
  const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(env === undefined ? {} : { env }) });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => { output = (output + chunk.toString()).slice(-8192); });
  child.stderr?.on('data', (chunk: Buffer) => { output = (output + chunk.toString()).slice(-8192); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (how: NodeJS.Signals = signal) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(how);
    await exited;
  };
  t.teardown(() => stop());
  return { process: child, output: () => output, stop };
}

/** A redis-server on a free loopback port with no persistence: a restart comes back empty. */
export async function startRedis(t: Teardown, port?: number): Promise<{ port: number; url: string; child: Child }> {
  const chosen = port ?? await freePort();
  const child = startChild(t, findProgram('redis-server') as string, ['--port', String(chosen), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no']);
  await waitForPort(chosen);
  return { port: chosen, url: `redis://127.0.0.1:${chosen}`, child };
}

/**
 * The one polling helper: resolves once `check` holds, with the milliseconds it took; rejects
 * naming `what` after `timeoutMs`. Polls every `everyMs` (1: a state held for a few ms is seen).
 */
export async function eventually(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 10_000, everyMs = 1): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

// Every problem inside the agent becomes one line on stderr, so it is visible
// in any log pipeline and never reaches the host application as an exception.

const LEVELS = { none: 0, error: 1, warn: 2, info: 3, debug: 4, verbose: 5, all: 6 } as const;
export type LogLevel = keyof typeof LEVELS;

let threshold: number = LEVELS.warn;
const said = new Set<string>();

export function isLogLevel(value: string): value is LogLevel {
  return Object.prototype.hasOwnProperty.call(LEVELS, value);
}

export function setLogLevel(level: LogLevel): void {
  threshold = LEVELS[level];
}

export function enabled(level: Exclude<LogLevel, 'none' | 'all'>): boolean {
  return LEVELS[level] <= threshold;
}

function write(level: Exclude<LogLevel, 'none' | 'all'>, message: string): void {
  if (LEVELS[level] > threshold) return;
  // One line per message, whatever the message holds, so grep and log shippers see one event;
  // and no raw control bytes, since messages quote what targets and apps sent.
  const line = `promotel ${level}: ${message.replace(/\r?\n/g, ' ').replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)}\n`;
  const stderr = process.stderr;
  try {
    stderr.write(line, (err) => {
      // A write that fails later (a pipe whose reader is gone, a full disk) is also emitted as 'error',
      // which would kill an app that has no listener: the guard Node's console puts on its own writes.
      if (err && stderr.listenerCount('error') === 0) stderr.once('error', forgive);
    });
  } catch {
    // stderr closed: nowhere left to report, and the app must go on.
  }
}

// Node forgives only the first failed write of stderr (console.error's guard reads `errorEmitted`), and
// a second one kills the app. The agent's line must not use that up: the stream's error state is set back,
// so that an app whose stderr reader is gone fares as it would without the agent.
function forgive(this: NodeJS.WriteStream): void {
  const stream = this as { _writableState?: { errorEmitted?: boolean }; _readableState?: { errorEmitted?: boolean } };
  if (stream._writableState) stream._writableState.errorEmitted = false;
  if (stream._readableState) stream._readableState.errorEmitted = false;
}

export const error = (message: string): void => write('error', message);
export const warn = (message: string): void => write('warn', message);
export const info = (message: string): void => write('info', message);
export const debug = (message: string): void => write('debug', message);

// Keys remembered at most: a source of ever-new problems (a polled target whose metric names change on
// every poll) must grow neither memory nor the log.
const MAX_SAID = 10_000;
let full = false;

/** Warn once per key for the life of the process: repeated failures (a callback that throws on every scrape) must not flood the log. */
export function warnOnce(key: string, message: string): void {
  if (said.has(key)) return;
  if (said.size >= MAX_SAID) {
    if (!full) warn(`${MAX_SAID} different problems have been reported; new ones are logged at debug level only (OTEL_LOG_LEVEL=debug), so that ever-new problems grow neither memory nor the log`);
    full = true;
    return debug(message);
  }
  said.add(key);
  warn(message);
}

/** Lets the warnings whose keys start with `prefix` be said again: the thing they were about recovered (or is gone). */
export function forgetWarnings(prefix: string): void {
  for (const key of said) if (key.startsWith(prefix)) said.delete(key);
}

/**
 * A hook failed on a request it was measuring: one warning per hook and cause, saying that only the
 * measurement was lost (`what`: "HTTP server metrics"; `outcome`: what became of the request).
 */
export function warnSkipped(what: string, err: unknown, outcome: 'was served' | 'went on'): void {
  const cause = describeError(err);
  warnOnce(`skipped:${what}:${cause}`, `${what} skipped a request: ${cause}; the request itself ${outcome}`);
}

export function describeError(err: unknown): string {
  try {
    if (err instanceof Error) return err.message || err.name;
    return String(err);
  } catch {
    // A thrown object whose toString() throws too: the report must not fail in its turn.
    return 'a value that cannot be printed';
  }
}

// The checks one value of the configuration goes through, shared by the
// environment and the options of start(): a setting given in code is held to
// the same rules as its variable, so neither can switch the agent into a state
// the other would refuse. Enumerations are case-insensitive, as the
// OpenTelemetry specification asks of its environment variables.
import { accessSync, constants, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { resolve } from 'node:path';

export type Checked<T> = { value: T } | { error: string };

/** A parser of the text of a variable: a value, or what is wrong with the text and how to fix it. */
export type Check<T> = (raw: string) => Checked<T>;

export const ok = <T>(value: T): Checked<T> => ({ value });
export const invalid = <T>(fix: string): Checked<T> => ({ error: `is invalid: ${fix}` });

export const bool: Check<boolean> = (raw) => {
  const v = raw.trim().toLowerCase();
  return v === 'true' ? ok(true) : v === 'false' ? ok(false) : invalid('set it to true or false');
};

export function oneOf<T extends string>(values: readonly T[], fix = `use ${listed(values)}`): Check<T> {
  return (raw) => {
    const v = raw.trim().toLowerCase();
    return (values as readonly string[]).includes(v) ? ok(v as T) : invalid(fix);
  };
}

export function wholeNumber(min: number, max: number, what = 'a whole number'): Check<number> {
  return (raw) => {
    const t = raw.trim();
    const n = Number(t);
    return /^\d+$/.test(t) && n >= min && n <= max ? ok(n) : invalid(`use ${what} from ${min} to ${max}`);
  };
}

export const millis = (min: number, max: number): Check<number> => wholeNumber(min, max, 'milliseconds');
export const port: Check<number> = (raw) => {
  const r = wholeNumber(0, 65535)(raw);
  return 'value' in r ? r : invalid('use a port number from 0 to 65535');
};

const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]*[A-Za-z0-9])?)*\.?$/;

/** An address to listen on. `[::1]` is accepted as ::1: it is how IPv6 addresses are written in URLs, so people write it here too. */
export const host: Check<string> = (raw) => {
  let t = raw.trim();
  if (t.startsWith('[') && t.endsWith(']')) t = t.slice(1, -1);
  if (isIP(t) !== 0 || HOSTNAME.test(t)) return ok(t);
  return invalid('use an IP address (0.0.0.0, 127.0.0.1, ::) or a host name');
};

export const text: Check<string> = (raw) => (raw.trim() ? ok(raw.trim()) : invalid('give a non-empty string'));

/** An http: or https: URL; anything else would fail at every export, far from its cause. */
export const httpUrl: Check<string> = (raw) => {
  try {
    const url = new URL(raw.trim());
    if (url.protocol === 'http:' || url.protocol === 'https:') return ok(url.href);
  } catch {
    // not a URL at all: same fix
  }
  return invalid('write a URL with http:// or https://');
};

/** A file this process can read, as a path from the working directory (how the OTLP exporters read it). */
export const readableFile: Check<string> = (raw) => {
  const path = resolve(raw.trim());
  try {
    accessSync(path, constants.R_OK);
    return statSync(path).isFile() ? ok(path) : invalid('that is not a file: give the path of a PEM file');
  } catch (err) {
    return invalid(`no file this process can read there (${(err as { code?: string }).code ?? 'unreadable'}): give the path of a PEM file`);
  }
};

/**
 * A URL's userinfo (`http://tenant:secret@host`) and query values (`?api-key=...`, as some hosted
 * collectors take their token) replaced by `***`, for warnings: like header values, they are
 * credentials. Also at the start of a value that lacks its scheme.
 */
export function hideCredentials(text: string): string {
  return text.replace(/(^|\/\/)[^/@\s"]+@/g, '$1***@').replace(/([?&][^=&#\s"]*=)[^&#\s"]+/g, '$1***');
}

export function listed(values: readonly string[]): string {
  return values.length < 2 ? values.join('') : `${values.slice(0, -1).join(', ')} or ${values.at(-1)}`;
}

/** How a value given in code is shown in a warning: as it would be written in JavaScript. */
export function shown(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

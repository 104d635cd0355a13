// One poll of one target: probe it, convert what it answered, and describe
// both as metric families. It never rejects; what goes wrong is counted in
// promotel_poll_errors_total{target, reason} and logged once per target and
// reason, so a target that stays broken does not flood the log.
import type { Counter, Histogram, Meter, UpDownCounter } from '@opentelemetry/api';
import { performance } from 'node:perf_hooks';
import { isUtf8 } from 'node:buffer';
import * as log from '../log';
import { allowed } from './allow';
import type { Module, PollConfig, Target } from './config';
import { convertJson } from './convert-json';
import { convertPrometheus } from './convert-prometheus';
import { PastDeadline } from './pace';
import { targetLabels, type ConvertError, type Family } from './families';
import { PHASES, probe, type ProbeResult } from './probe';

export interface Instruments {
  duration: Histogram;
  inFlight: UpDownCounter;
  errors: Counter;
}

export function createInstruments(meter: Meter): Instruments {
  return {
    duration: meter.createHistogram('promotel.poll.duration', {
      description: 'Time one poll of a target took: the probe and the conversion of its answer.',
      unit: 's',
      advice: { explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] },
    }),
    inFlight: meter.createUpDownCounter('promotel.poll.in_flight', { description: 'Polls running now.', unit: '{poll}' }),
    errors: meter.createCounter('promotel.poll.errors', {
      description: 'Problems of polls: failed probes (by the probe reason) and values that could not be converted.',
      unit: '{error}',
    }),
  };
}

export interface PollContext {
  config: PollConfig;
  instruments: Instruments;
  signal: AbortSignal;
  /** Per target: the types seen at the previous poll, to report type changes. */
  memory: Map<string, Map<string, string>>;
}

export async function pollTarget(target: Target, module: Module, ctx: PollContext): Promise<Family[]> {
  const started = performance.now();
  // promotel's own series and log lines are per configured target, or per allow: pattern for /probe URLs.
  const self = target.adHoc ?? target.name;
  const { instruments } = ctx;
  instruments.inFlight.add(1);
  try {
    const origin = new URL(target.url).origin;
    const result = await probe(new URL(target.url), {
      module,
      timeoutMs: target.timeoutMs,
      keepBody: module.format !== 'none',
      signal: ctx.signal,
      // A configured target may redirect within its origin; anywhere else, and for every redirect
      // of a URL given to /probe (an open redirect must not widen what allow: permits), only
      // where allow: says.
      mayFollow: (next) => (next.origin === origin && target.adHoc === undefined) || allowed(next, ctx.config.allow),
    });
    const extra = targetLabels(target);
    let converted: Family[] = [];
    let errors: ConvertError[] = [];
    if (result.success && result.body !== undefined) {
      // A one-off URL of /probe has no previous poll to compare with, and must not leave state behind.
      let types = target.adHoc !== undefined ? new Map<string, string>() : ctx.memory.get(target.name);
      if (!types) ctx.memory.set(target.name, (types = new Map()));
      try {
        // Exposition text and JSON are UTF-8. Decoding replaces invalid bytes with U+FFFD, which would
        // then show in label values and names with nothing to say why.
        const text = result.body.toString('utf8');
        const invalidUtf8 = !isUtf8(result.body);
        if (module.format === 'json') {
          // The probe's timeout bounds the conversion too, as for Prometheus text.
          const out = await convertJson(text, module.metrics, extra, types, started + target.timeoutMs);
          converted = out.families;
          errors = out.errors;
          if (out.failed) fail(result, 'invalid_json', out.failed);
        } else if (module.format === 'prometheus') {
          // The probe's timeout bounds the conversion too: the scraper waits for both.
          const out = await convertPrometheus(text, extra, types, started + target.timeoutMs);
          converted = out.families;
          errors = out.errors;
          if (out.samples === 0 && text.trim() !== '') fail(result, 'invalid_exposition', `none of the body is Prometheus text (${out.errors[0]?.message ?? 'no samples'})`);
        }
        if (invalidUtf8) errors.push({ reason: 'invalid_utf8', message: `the body (${result.body.length} bytes) is not valid UTF-8` });
      } catch (err) {
        [converted, errors] = [[], []];
        if (err instanceof PastDeadline) {
          fail(result, 'timeout', `the answer came, but converting it took past the ${Math.round(target.timeoutMs)} ms timeout (${result.body.length} bytes): raise timeout: for this target, or have it serve fewer series`);
        } else {
          // A bug in a converter: the probe's own series still say the target failed, so its alerts fire.
          fail(result, 'internal', `converting the answer failed (${log.describeError(err)}); please report this with the body`);
        }
      }
    }
    if (!result.success) {
      const reason = result.reason ?? 'network';
      instruments.errors.add(1, { target: self, reason });
      log.warnOnce(`poll:${self}:${reason}`, `target ${target.name} (${target.url}) failed: ${reason}: ${(result as { message?: string }).message ?? reason}; promotel_probe_success{target="${target.name}"} is 0 and promotel_poll_errors_total{target="${self}",reason="${reason}"} counts it (logged once)`);
    }
    // A clean poll ends the episode: the next failure of this target is logged again. Not for a URL
    // given to /probe: its lines are per allow: pattern, whose other URLs may be failing all along, and
    // every success among them would log those failures anew.
    if (result.success && errors.length === 0 && target.adHoc === undefined) log.forgetWarnings(`poll:${self}:`);
    // One count and one line per reason: a body can hold a hundred thousand bad values.
    const byReason = new Map<string, { count: number; first: ConvertError }>();
    for (const e of errors) {
      const seen = byReason.get(e.reason);
      if (seen) seen.count++;
      else byReason.set(e.reason, { count: 1, first: e });
    }
    for (const [reason, { count, first }] of byReason) {
      instruments.errors.add(count, { target: self, reason });
      const more = count > 1 ? ` (and ${count - 1} more like it)` : '';
      log.warnOnce(`poll:${self}:${reason}`, `target ${target.name} (${target.url}): ${reason}: ${first.message}${more}; ${CONSEQUENCE[reason] ?? 'the value is skipped'}, and promotel_poll_errors_total{target="${self}",reason="${reason}"} counts it (logged once)`);
    }
    return [...probeFamilies(result, extra, target.url.startsWith('https:')), ...converted];
  } catch (err) {
    // Only a bug gets here; the poller goes on.
    instruments.errors.add(1, { target: self, reason: 'internal' });
    log.warnOnce(`poll:${self}:internal`, `polling target ${target.name} failed unexpectedly: ${log.describeError(err)}`);
    return [];
  } finally {
    instruments.inFlight.add(-1);
    instruments.duration.record((performance.now() - started) / 1000, { target: self });
  }
}

/** What happens to the data a conversion problem is about, when it is not skipped. */
const CONSEQUENCE: Record<string, string> = {
  type_changed: 'the value is served as it is now',
  duplicate_series: 'the last value is kept',
  reserved_name: 'that family is left out',
  invalid_utf8: 'each invalid byte sequence is served as U+FFFD: have the target send UTF-8',
};

function fail(result: ProbeResult & { message?: string }, reason: string, message: string): void {
  result.success = false;
  result.reason = reason;
  result.message = message;
}

/** The blackbox-style metrics of one probe. */
export function probeFamilies(r: ProbeResult, labels: Record<string, string>, https: boolean): Family[] {
  const g = (name: string, unit: string, help: string, value: number, extra?: Record<string, string>): Family => ({
    name, kind: 'gauge', unit, help, series: [{ labels: extra ? { ...labels, ...extra } : labels, value }],
  });
  const out: Family[] = [
    g('promotel.probe.success', '', 'Whether the last probe of the target succeeded (1) or failed (0).', r.success ? 1 : 0),
    g('promotel.probe.duration', 's', 'How long the last probe took, all redirects included.', r.duration),
    {
      name: 'promotel.probe.phase.duration', kind: 'gauge', unit: 's', help: 'Time of each phase of the last probe, summed over redirects.',
      series: PHASES.map((phase) => ({ labels: { ...labels, phase }, value: r.phases[phase] })),
    },
    g('promotel.probe.http.status_code', '', 'Status code of the last response; 0 when none came.', r.statusCode),
    g('promotel.probe.http.response.size', 'By', 'Body bytes of the last response, as received.', r.responseBytes),
    g('promotel.probe.http.redirects', '{redirect}', 'Redirects the last probe followed.', r.redirects),
  ];
  if (!r.success) out.push(g('promotel.probe.failure', '', 'Present (1) while the last probe failed, with the reason.', 1, { reason: r.reason ?? 'network' }));
  if (https && r.certExpiry !== undefined) out.push(g('promotel.probe.tls.cert.expiry_timestamp', 's', 'When the earliest certificate of the chain the target sent expires (unix time).', r.certExpiry));
  return out;
}

// Configuration as the OpenTelemetry specification words it: percent-decoded
// resource attributes discarded whole on error, per-signal OTLP variables that
// fall back to the generic ones, case-insensitive enumerations, and the
// options of start() held to the same checks as the variables.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readConfig, resolveConfig } from '../src/config';

const OTLP = { OTEL_METRICS_EXPORTER: 'otlp' };

test('OTEL_RESOURCE_ATTRIBUTES: keys and values are percent-decoded', () => {
  const { config, warnings } = readConfig({ OTEL_RESOURCE_ATTRIBUTES: 'k%20ey=v%2C1, team = a%3Db ' });
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.resourceAttributes, { 'k ey': 'v,1', team: 'a=b' });
});

for (const [value, entry, why] of [
  ['novalue,=x,a=100%,ok=1', 'novalue', 'has no "=": write each entry as key=value, entries separated by commas (and 2 more bad entries)'],
  ['ok=1,a=100%', 'a=100%', 'has a bad percent escape: write % as %25'],
  ['x=1=2', 'x=1=2', 'has a second "=": write = inside a value as %3D'],
  ['ok=1,=x', '=x', 'has no key before "=": write each entry as key=value'],
] as const) {
  test(`OTEL_RESOURCE_ATTRIBUTES=${value}: one warning naming the first bad entry, and the whole variable is discarded`, () => {
    const { config, warnings } = readConfig({ OTEL_RESOURCE_ATTRIBUTES: value });
    assert.deepEqual(config.resourceAttributes, {});
    assert.deepEqual(warnings, [`OTEL_RESOURCE_ATTRIBUTES=${JSON.stringify(value)} is invalid: the entry ${JSON.stringify(entry)} ${why}; the whole variable is ignored, as the OpenTelemetry specification asks`]);
  });
}

test('an unparsable per-signal OTLP variable counts as not set: the generic one applies, and the warning says so', () => {
  const { config, warnings } = readConfig({
    ...OTLP,
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/jsn',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: 'abc',
    OTEL_EXPORTER_OTLP_TIMEOUT: '2000',
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'collector:4318/v1/metrics',
    OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otel.example:4318/base/',
  });
  assert.deepEqual([config.otlpProtocol, config.otlpTimeoutMs, config.otlpEndpoint], ['http/json', 2000, 'https://otel.example:4318/base/v1/metrics']);
  assert.deepEqual(warnings, [
    'OTEL_EXPORTER_OTLP_METRICS_PROTOCOL="http/jsn" is invalid: use http/protobuf or http/json; using http/json from OTEL_EXPORTER_OTLP_PROTOCOL',
    'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT="collector:4318/v1/metrics" is invalid: write a URL with http:// or https://; using https://otel.example:4318/base/v1/metrics from OTEL_EXPORTER_OTLP_ENDPOINT',
    'OTEL_EXPORTER_OTLP_METRICS_TIMEOUT="abc" is invalid: use milliseconds from 100 to 600000; using 2000 from OTEL_EXPORTER_OTLP_TIMEOUT',
  ]);
  // A valid per-signal variable wins, and the generic one it overrides is not read at all.
  const over = readConfig({ ...OTLP, OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: '1500', OTEL_EXPORTER_OTLP_TIMEOUT: 'abc' });
  assert.equal(over.config.otlpTimeoutMs, 1500);
  assert.deepEqual(over.warnings, []);
});

test('OTEL_EXPORTER_OTLP_ENDPOINT without a scheme: one warning naming what is used instead', () => {
  const { config, warnings } = readConfig({ ...OTLP, OTEL_EXPORTER_OTLP_ENDPOINT: '127.0.0.1:4399' });
  assert.equal(config.otlpEndpoint, 'http://localhost:4318/v1/metrics');
  assert.deepEqual(warnings, ['OTEL_EXPORTER_OTLP_ENDPOINT="127.0.0.1:4399" is invalid: write a URL with http:// or https://; using http://localhost:4318/v1/metrics']);
  assert.equal(readConfig({ ...OTLP, OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://h:21' }).config.otlpEndpoint, 'http://localhost:4318/v1/metrics');
  assert.equal(readConfig({ ...OTLP, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://h:4318' }).config.otlpEndpoint, 'http://h:4318/v1/metrics');
  assert.equal(readConfig({ ...OTLP, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://h:4318/custom' }).config.otlpEndpoint, 'http://h:4318/custom');
});

test('OTEL_EXPORTER_OTLP_HEADERS: malformed entries are one warning naming the variable and the headers, never their values', () => {
  const { config, warnings } = readConfig({ ...OTLP, OTEL_EXPORTER_OTLP_HEADERS: 'x-a=%ZZ,x-b,bad header=1,authorization=Basic%20dXNlcjpwYXNz==,x-c= d ' });
  assert.deepEqual(config.otlpHeaders, { authorization: 'Basic dXNlcjpwYXNz==', 'x-c': 'd' });
  assert.deepEqual(warnings, [
    'OTEL_EXPORTER_OTLP_HEADERS is invalid in part: header "x-a" has a bad percent escape: write % as %25; header "x-b" has no "=": write each entry as key=value, entries separated by commas; header "bad header" is not a valid header name: use letters, digits and - only; those headers are not sent, the others are (values are not shown: they may be credentials)',
  ]);
  const both = readConfig({ ...OTLP, OTEL_EXPORTER_OTLP_HEADERS: 'a=1,b=2', OTEL_EXPORTER_OTLP_METRICS_HEADERS: 'b=3' });
  assert.deepEqual(both.config.otlpHeaders, { a: '1', b: '3' });
});

test('OTEL_EXPORTER_OTLP_HEADERS: a value HTTP cannot carry is named for what it holds, a control character or text beyond Latin-1', () => {
  const { config, warnings } = readConfig({ ...OTLP, OTEL_EXPORTER_OTLP_HEADERS: 'x-nl=a%0Ab,x-euro=%E2%82%AC5,x-latin=gr%C3%BC%C3%9F' });
  assert.deepEqual(config.otlpHeaders, { 'x-latin': 'grüß' });
  assert.deepEqual(warnings, [
    'OTEL_EXPORTER_OTLP_HEADERS is invalid in part: header "x-nl" has a control character in its value: percent-encode only printable characters; header "x-euro" has a character beyond Latin-1 in its value, which HTTP headers cannot carry: use ASCII, or the encoding the collector expects (base64, say); those headers are not sent, the others are (values are not shown: they may be credentials)',
  ]);
});

test('OTLP compression and TLS files: case-insensitive, the per-signal variable first, a missing file named with the fix', () => {
  const { config, warnings } = readConfig({
    ...OTLP,
    OTEL_EXPORTER_OTLP_COMPRESSION: ' GZIP ',
    OTEL_EXPORTER_OTLP_METRICS_COMPRESSION: 'zstd',
    OTEL_EXPORTER_OTLP_CERTIFICATE: '/nonexistent/ca.pem',
    OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: __filename,
  });
  assert.equal(config.otlpCompression, 'gzip');
  assert.equal(config.otlpCertificate, undefined);
  assert.equal(config.otlpClientCertificate, undefined);
  assert.deepEqual(warnings, [
    'OTEL_EXPORTER_OTLP_METRICS_COMPRESSION="zstd" is invalid: use gzip or none; using gzip from OTEL_EXPORTER_OTLP_COMPRESSION',
    'OTEL_EXPORTER_OTLP_CERTIFICATE="/nonexistent/ca.pem" is invalid: no file this process can read there (ENOENT): give the path of a PEM file; using the default',
    'OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE is set without OTEL_EXPORTER_OTLP_CLIENT_KEY (or their _METRICS_ variants): mutual TLS needs both; neither is used',
  ]);
  const both = readConfig({ ...OTLP, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: __filename, OTEL_EXPORTER_OTLP_METRICS_CLIENT_KEY: __filename });
  assert.deepEqual([both.config.otlpClientCertificate, both.config.otlpClientKey, both.warnings], [__filename, __filename, []]);
});

test('OTLP variables are neither read nor warned about while OTLP is off', () => {
  const env = { OTEL_EXPORTER_OTLP_TIMEOUT: 'abc', OTEL_EXPORTER_OTLP_ENDPOINT: 'x', OTEL_EXPORTER_OTLP_HEADERS: 'x-a', OTEL_METRIC_EXPORT_INTERVAL: 'often', OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'delta' };
  assert.deepEqual(readConfig(env).warnings, []);
  assert.equal(readConfig({ ...env, OTEL_METRICS_EXPORTER: 'prometheus,otlp' }).warnings.length, 5);
});

test('enumerations are case-insensitive', () => {
  const { config, warnings } = readConfig({ ...OTLP, OTEL_EXPORTER_OTLP_PROTOCOL: 'HTTP/JSON', PROMOTEL_HTTP_SERVER_HOOK: 'Instrumentation-HTTP', OTEL_METRICS_EXEMPLAR_FILTER: 'Always_On', OTEL_LOG_LEVEL: 'Info' });
  assert.deepEqual(warnings, []);
  assert.deepEqual([config.otlpProtocol, config.httpServerHook, config.exemplarFilter, config.logLevel], ['http/json', 'instrumentation-http', 'always_on', 'info']);
});

test('OTEL_METRICS_EXEMPLAR_FILTER: trace_based by default, an unknown value named', () => {
  assert.equal(readConfig({}).config.exemplarFilter, 'trace_based');
  assert.equal(readConfig({ OTEL_METRICS_EXEMPLAR_FILTER: 'always_off' }).config.exemplarFilter, 'always_off');
  const { config, warnings } = readConfig({ OTEL_METRICS_EXEMPLAR_FILTER: 'sometimes' });
  assert.equal(config.exemplarFilter, 'trace_based');
  assert.deepEqual(warnings, ['OTEL_METRICS_EXEMPLAR_FILTER="sometimes" is invalid: use trace_based, always_on or always_off; using trace_based']);
});

test('OTEL_METRIC_EXPORT_TIMEOUT is read; a delta temporality preference is one warning pointing to the Collector', () => {
  const { config, warnings } = readConfig({ ...OTLP, OTEL_METRIC_EXPORT_TIMEOUT: '700', OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'Delta' });
  assert.equal(config.exportTimeoutMs, 700);
  assert.deepEqual(warnings, [
    'OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="Delta" is not supported by promotel, which pushes cumulative data only: leave it unset, and convert to delta in the OpenTelemetry Collector with its cumulativetodelta processor if the backend needs delta; using cumulative',
  ]);
  assert.deepEqual(readConfig({ ...OTLP, OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'cumulative' }).warnings, []);
  assert.deepEqual(readConfig({ ...OTLP, OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'weekly' }).warnings, [
    'OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE="weekly" is invalid: use cumulative (delta and lowmemory are not supported by promotel); using cumulative',
  ]);
});

test('OTEL_EXPORTER_PROMETHEUS_HOST in brackets, as in a URL, is the address inside', () => {
  assert.equal(readConfig({ OTEL_EXPORTER_PROMETHEUS_HOST: '[::1]' }).config.host, '::1');
  assert.deepEqual(readConfig({ OTEL_EXPORTER_PROMETHEUS_HOST: 'http://x' }).warnings, ['OTEL_EXPORTER_PROMETHEUS_HOST="http://x" is invalid: use an IP address (0.0.0.0, 127.0.0.1, ::) or a host name; using 0.0.0.0']);
});

test('options of start() go through the same checks: one warning naming the option, then what the environment says', () => {
  const { config, warnings } = resolveConfig({ OTEL_EXPORTER_PROMETHEUS_PORT: '9100' }, { port: 70000, logLevel: 'LOUD', hostMetrics: 'no', prot: 1 });
  assert.deepEqual([config.port, config.logLevel, config.hostMetrics], [9100, 'warn', true]);
  assert.deepEqual(warnings, [
    'promotel.start() option port=70000 is invalid: use a port number from 0 to 65535; using 9100',
    'promotel.start() option logLevel="LOUD" is invalid: use none, error, warn, info, debug, verbose or all; using warn',
    'promotel.start() option hostMetrics="no" is invalid: set it to true or false; using true',
    `promotel.start() option "prot" is unknown: use disabled, serviceName, resourceAttributes, host, port, exporters, logLevel, hostMetrics, runtimeMetrics, eventLoopResolutionMs, httpMetrics, httpServerHook, exemplarFilter, cardinalityLimit, clusterPushIntervalMs, otlpProtocol, otlpEndpoint, otlpHeaders, exportIntervalMs, otlpTimeoutMs, exportTimeoutMs, otlpCompression, otlpCertificate, otlpClientCertificate or otlpClientKey; it is ignored`,
  ]);
  assert.equal(resolveConfig({}, { logLevel: 'INFO' }).config.logLevel, 'info');
  assert.deepEqual(resolveConfig({}, { exporters: [] }).config.exporters, []);
  assert.deepEqual(resolveConfig({}, 9000).warnings, ['promotel.start() takes an options object such as { port: 9464 }, not 9000; it is ignored']);
});

test('a variable that a valid option overrides is not warned about', () => {
  const { config, warnings } = resolveConfig({ OTEL_EXPORTER_PROMETHEUS_PORT: 'abc', OTEL_EXPORTER_OTLP_TIMEOUT: 'abc' }, { port: 9321, exporters: ['otlp'], otlpTimeoutMs: 800 });
  assert.deepEqual([config.port, config.otlpTimeoutMs], [9321, 800]);
  assert.deepEqual(warnings, []);
});

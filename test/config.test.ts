// Configuration: the standard OTEL_* variables first, PROMOTEL_* for the rest,
// and every bad value is one warning naming the variable, the value and the fix.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULTS, readConfig } from '../src/config';

test('with no variables set, the defaults apply and nothing is said', () => {
  const { config, warnings } = readConfig({});
  assert.deepEqual(warnings, []);
  assert.equal(config.port, 9000);
  assert.equal(config.host, '0.0.0.0');
  assert.deepEqual(config.exporters, ['prometheus']);
  assert.equal(config.disabled, false);
  assert.equal(config.cardinalityLimit, 2000);
  assert.equal(config.httpServerHook, 'diagnostics_channel');
  assert.deepEqual({ ...config, resourceAttributes: {}, exporters: [] }, { ...DEFAULTS, resourceAttributes: {}, exporters: [] });
});

test('the standard variables are read', () => {
  const { config, warnings } = readConfig({
    OTEL_SDK_DISABLED: 'TRUE',
    OTEL_SERVICE_NAME: ' checkout ',
    OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod,team=a%20b',
    OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
    OTEL_EXPORTER_PROMETHEUS_PORT: '9464',
    OTEL_METRICS_EXPORTER: 'none',
    OTEL_LOG_LEVEL: 'DEBUG',
  });
  assert.deepEqual(warnings, []);
  assert.equal(config.disabled, true);
  assert.equal(config.serviceName, 'checkout');
  assert.deepEqual(config.resourceAttributes, { 'deployment.environment.name': 'prod', team: 'a b' });
  assert.equal(config.host, '127.0.0.1');
  assert.equal(config.port, 9464);
  assert.deepEqual(config.exporters, []);
  assert.equal(config.logLevel, 'debug');
});

for (const value of ['abc', '70000', '-1', '9000.5', '0x2328']) {
  test(`OTEL_EXPORTER_PROMETHEUS_PORT=${value} warns once, naming the variable, and the default 9000 is used`, () => {
    const { config, warnings } = readConfig({ OTEL_EXPORTER_PROMETHEUS_PORT: value });
    assert.equal(config.port, 9000);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, new RegExp(`^OTEL_EXPORTER_PROMETHEUS_PORT="${value.replace('.', '\\.')}" is invalid: use a port number from 0 to 65535; using 9000$`));
  });
}

test('each bad PROMOTEL_* or boolean value is named with its fix', () => {
  const { config, warnings } = readConfig({
    OTEL_SDK_DISABLED: 'yes',
    PROMOTEL_HOST_METRICS: 'off',
    PROMOTEL_CARDINALITY_LIMIT: '1',
    PROMOTEL_HTTP_SERVER_HOOK: 'monkeypatch',
    OTEL_LOG_LEVEL: 'loud',
  });
  assert.equal(config.disabled, false);
  assert.equal(config.hostMetrics, true);
  assert.equal(config.cardinalityLimit, 2000);
  assert.equal(config.httpServerHook, 'diagnostics_channel');
  assert.equal(config.logLevel, 'warn');
  assert.deepEqual(warnings, [
    'OTEL_SDK_DISABLED="yes" is invalid: set it to true or false; using false',
    'OTEL_LOG_LEVEL="loud" is invalid: use none, error, warn, info, debug, verbose or all; using warn',
    'PROMOTEL_HOST_METRICS="off" is invalid: set it to true or false; using true',
    'PROMOTEL_HTTP_SERVER_HOOK="monkeypatch" is invalid: use diagnostics_channel or instrumentation-http; using diagnostics_channel',
    'PROMOTEL_CARDINALITY_LIMIT="1" is invalid: use a whole number from 2 to 1000000; using 2000',
  ]);
});

test('PROMOTEL_EVENTLOOP_DELAY_RESOLUTION: milliseconds, 10 by default, a bad value named', () => {
  assert.equal(readConfig({}).config.eventLoopResolutionMs, 10);
  assert.equal(readConfig({ PROMOTEL_EVENTLOOP_DELAY_RESOLUTION: '100' }).config.eventLoopResolutionMs, 100);
  const { config, warnings } = readConfig({ PROMOTEL_EVENTLOOP_DELAY_RESOLUTION: '0.5' });
  assert.equal(config.eventLoopResolutionMs, 10);
  assert.deepEqual(warnings, ['PROMOTEL_EVENTLOOP_DELAY_RESOLUTION="0.5" is invalid: use milliseconds from 1 to 60000; using 10']);
});

test('OTEL_METRICS_EXPORTER of empty entries only (",") is a warning and the default, not silence', () => {
  const { config, warnings } = readConfig({ OTEL_METRICS_EXPORTER: ' , ' });
  assert.deepEqual(config.exporters, ['prometheus']);
  assert.deepEqual(warnings, ['OTEL_METRICS_EXPORTER=" , " names no exporter: use prometheus, otlp, both separated by a comma, or none; using prometheus']);
});

test('OTEL_METRICS_EXPORTER: prometheus, otlp, both, or none', () => {
  assert.deepEqual(readConfig({ OTEL_METRICS_EXPORTER: 'prometheus' }).config.exporters, ['prometheus']);
  assert.deepEqual(readConfig({ OTEL_METRICS_EXPORTER: ' none ' }).config.exporters, []);
  assert.deepEqual(readConfig({ OTEL_METRICS_EXPORTER: 'otlp' }).config.exporters, ['otlp']);
  const both = readConfig({ OTEL_METRICS_EXPORTER: 'prometheus, OTLP' });
  assert.deepEqual(both.config.exporters, ['prometheus', 'otlp']);
  assert.deepEqual(both.warnings, []);
  const bad = readConfig({ OTEL_METRICS_EXPORTER: 'zipkin' });
  assert.deepEqual(bad.config.exporters, ['prometheus']);
  assert.deepEqual(bad.warnings, ['OTEL_METRICS_EXPORTER="zipkin" is invalid: "zipkin" is not an exporter: use prometheus, otlp, both separated by a comma, or none; using prometheus']);
  const two = readConfig({ OTEL_METRICS_EXPORTER: 'bogus,foo' });
  assert.deepEqual(two.warnings, ['OTEL_METRICS_EXPORTER="bogus,foo" is invalid: "bogus" and "foo" are not exporters: use prometheus, otlp, both separated by a comma, or none; using prometheus'], 'one warning, not one per name');
  const mixed = readConfig({ OTEL_METRICS_EXPORTER: 'otlp,bogus' });
  assert.deepEqual(mixed.config.exporters, ['otlp', 'prometheus']);
  assert.deepEqual(mixed.warnings, ['OTEL_METRICS_EXPORTER="otlp,bogus" is invalid: "bogus" is not an exporter: use prometheus, otlp, both separated by a comma, or none; using otlp,prometheus'], 'says what runs');
});

test('OTLP settings: protocol, interval and timeout, the *_METRICS_* variants winning', () => {
  const { config, warnings } = readConfig({
    OTEL_METRICS_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: 'http/json',
    OTEL_METRIC_EXPORT_INTERVAL: '250',
    OTEL_EXPORTER_OTLP_TIMEOUT: '9000',
    OTEL_EXPORTER_OTLP_METRICS_TIMEOUT: '1500',
  });
  assert.deepEqual(warnings, []);
  assert.deepEqual([config.otlpProtocol, config.exportIntervalMs, config.otlpTimeoutMs], ['http/json', 250, 1500]);
  const grpc = readConfig({ OTEL_METRICS_EXPORTER: 'otlp', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_METRIC_EXPORT_INTERVAL: 'often' });
  assert.equal(grpc.config.otlpProtocol, 'http/protobuf');
  assert.equal(grpc.config.exportIntervalMs, 60_000);
  assert.deepEqual(grpc.warnings, [
    'OTEL_EXPORTER_OTLP_PROTOCOL="grpc" is not supported by promotel: use http/protobuf (the Collector\'s port 4318); using http/protobuf',
    'OTEL_METRIC_EXPORT_INTERVAL="often" is invalid: use milliseconds from 100 to 86400000; using 60000',
  ]);
});


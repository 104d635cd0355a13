// Which format and encoding the endpoint picks for the Accept headers real
// scrapers send. The Prometheus headers are the ones its scrape code builds
// from `scrape_protocols` (q falls by 0.1 per protocol in the order given).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { acceptsGzip, wantsOpenMetrics } from '../src/server';

const OPENMETRICS = true;
const TEXT = false;

test('Prometheus gets the format it ranks first', () => {
  const cases: Array<[string, string, boolean]> = [
    ['Prometheus 2.42 default', 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1', OPENMETRICS],
    ['Prometheus 2.49+ default', 'application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2', OPENMETRICS],
    ['Prometheus 2.49+, scrape_protocols [PrometheusText0.0.4, OpenMetricsText1.0.0]', 'text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,*/*;q=0.3', TEXT],
    ['Prometheus 3 default', 'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2', OPENMETRICS],
    ['Prometheus 3, scrape_protocols [PrometheusText1.0.0]', 'text/plain;version=1.0.0;escaping=allow-utf-8;q=0.5,*/*;q=0.4', TEXT],
    ['Prometheus with scrape_protocols [OpenMetricsText0.0.1] only', 'application/openmetrics-text;version=0.0.1;q=0.5,*/*;q=0.4', TEXT],
  ];
  for (const [who, accept, expected] of cases) assert.equal(wantsOpenMetrics(accept), expected, who);
});

test('q decides, then an explicit type over a wildcard, then the order', () => {
  assert.equal(wantsOpenMetrics('application/openmetrics-text;q=0.1,text/plain;q=0.9'), TEXT);
  assert.equal(wantsOpenMetrics('text/plain;q=0.1,application/openmetrics-text;q=0.9'), OPENMETRICS);
  assert.equal(wantsOpenMetrics('application/openmetrics-text,*/*'), OPENMETRICS, 'equal q: the explicit type');
  assert.equal(wantsOpenMetrics('*/*,application/openmetrics-text'), OPENMETRICS, 'equal q: the explicit type, wherever it stands');
  assert.equal(wantsOpenMetrics('text/plain,application/openmetrics-text'), TEXT, 'equal q, both explicit: the first');
  assert.equal(wantsOpenMetrics('application/openmetrics-text,text/plain'), OPENMETRICS, 'equal q, both explicit: the first');
  assert.equal(wantsOpenMetrics('text/*;q=0.5,application/openmetrics-text;q=0.5'), OPENMETRICS);
});

test('parameters are read as RFC 9110 spells them: case-insensitive names, optional quotes and spaces', () => {
  assert.equal(wantsOpenMetrics('application/openmetrics-text;version=1.0.0;Q=0'), TEXT, 'Q=0 refuses it');
  assert.equal(wantsOpenMetrics('application/openmetrics-text; version="1.0.0"'), OPENMETRICS);
  assert.equal(wantsOpenMetrics('Application/OpenMetrics-Text ; Version=1.0.0 ; q=0.8'), OPENMETRICS);
  assert.equal(wantsOpenMetrics('application/openmetrics-text;q=0.000'), TEXT);
  assert.equal(wantsOpenMetrics('application/openmetrics-text;q=bogus'), OPENMETRICS, 'a malformed q is ignored, not read as 0');
});

test('no Accept, a wildcard or an unknown type gets text 0.0.4', () => {
  for (const accept of [undefined, '', '*/*', 'text/plain', 'application/json', 'application/openmetrics-text;version=2.0.0', 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited']) {
    assert.equal(wantsOpenMetrics(accept), TEXT, String(accept));
  }
});

test('gzip when the scraper accepts it with q > 0', () => {
  assert.equal(acceptsGzip('gzip'), true);
  assert.equal(acceptsGzip('br, gzip;q=0.5'), true);
  assert.equal(acceptsGzip('gzip;q=0'), false);
  assert.equal(acceptsGzip('identity'), false);
  assert.equal(acceptsGzip(undefined), false);
});

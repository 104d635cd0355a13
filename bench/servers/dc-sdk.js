// Peer: a metrics-only diagnostics_channel hook that records into sdk-metrics
// (promotel's previous design): shows what the SDK's per-record hashing costs.
'use strict';
const dc = require('node:diagnostics_channel');
const { MeterProvider } = require('@opentelemetry/sdk-metrics');
const { PrometheusExporter } = require('@opentelemetry/exporter-prometheus');
const provider = new MeterProvider({ readers: [new PrometheusExporter({ host: '127.0.0.1', port: Number(process.env.METRICS_PORT) })] });
const hist = provider.getMeter('dc').createHistogram('http.server.request.duration', { unit: 's', advice: { explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10] } });
const interned = new Map();
dc.subscribe('http.server.request.start', ({ request, response }) => {
  const start = performance.now();
  response.on('close', () => {
    const key = `${request.method} ${response.statusCode}`;
    let attrs = interned.get(key);
    if (!attrs) interned.set(key, (attrs = { 'http.request.method': request.method, 'http.response.status_code': response.statusCode }));
    hist.record((performance.now() - start) / 1000, attrs);
  });
});

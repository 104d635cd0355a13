// HTTP metrics through the stock @opentelemetry/instrumentation-http: always
// for outgoing requests (http.client.request.duration), and for incoming ones
// too when PROMOTEL_HTTP_SERVER_HOOK=instrumentation-http. In that mode the
// route comes from @opentelemetry/instrumentation-express, which needs an
// async context manager, so both are loaded only then.
//
// Metric table (OTel stable HTTP semantic conventions):
// | OTel name                      | type      | unit | attributes |
// | http.client.request.duration   | histogram | s    | http.request.method, server.address, server.port, http.response.status_code, network.protocol.version, error.type |
// | http.server.request.duration   | histogram | s    | (only in instrumentation-http mode; same attributes as the diagnostics_channel hook) |
import { syncBuiltinESMExports } from 'node:module';
import { context, type MeterProvider } from '@opentelemetry/api';
import type { Instrumentation } from '@opentelemetry/instrumentation';
import { ownServers } from '../server';

export function enableOtelHttp(meterProvider: MeterProvider, options: { server: boolean }): () => void {
  const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http') as typeof import('@opentelemetry/instrumentation-http');
  const instrumentations: Instrumentation[] = [
    new HttpInstrumentation({
      disableIncomingRequestInstrumentation: !options.server,
      ignoreIncomingRequestHook: (req) => ownServers.has((req.socket as unknown as { server?: object }).server ?? {}),
      // Telemetry about telemetry: the OTLP exporters' own pushes are not the app's traffic.
      ignoreOutgoingRequestHook: (options) => /OTel-OTLP-Exporter-JavaScript/.test(String((options.headers as Record<string, unknown> | undefined)?.['User-Agent'] ?? '')),
    }),
  ];
  if (options.server) {
    const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks') as typeof import('@opentelemetry/context-async-hooks');
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    const { ExpressInstrumentation } = require('@opentelemetry/instrumentation-express') as typeof import('@opentelemetry/instrumentation-express');
    instrumentations.push(new ExpressInstrumentation());
  }
  for (const i of instrumentations) {
    i.setMeterProvider(meterProvider);
    i.enable();
  }
  // Patch now rather than at the app's first require, then copy the patched
  // functions into the ES-module view of the builtins, so that
  // `import { request } from 'node:http'` is measured as well.
  require('node:http');
  require('node:https');
  syncBuiltinESMExports();
  return () => {
    for (const i of instrumentations) i.disable();
  };
}

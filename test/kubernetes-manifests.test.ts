// examples/kubernetes: the manifests must agree with each other and with the
// agent: the annotations, the container port, the Service and the PodMonitor
// all point at the agent's metrics port, and NODE_OPTIONS preloads the agent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { DEFAULTS } from '../src/config';
import { ROOT } from './helpers';

const DIR = join(ROOT, 'examples', 'kubernetes');

// The parts of the Kubernetes objects this test reads.
interface Port {
  name?: string;
  containerPort?: number;
  port?: number;
  targetPort?: number | string;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: unknown;
}
interface Container {
  name: string;
  env?: EnvVar[];
  ports?: Port[];
  readinessProbe?: { httpGet?: { path: string; port: number | string } };
  livenessProbe?: { httpGet?: { path: string; port: number | string } };
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    selector?: { matchLabels?: Record<string, string> } & Record<string, string>;
    template?: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: { containers: Container[] } };
    ports?: Port[];
    podMetricsEndpoints?: Array<{ port?: string; path?: string; interval?: string }>;
  };
}

function loadAll(): Array<K8sObject & { file: string }> {
  const out: Array<K8sObject & { file: string }> = [];
  for (const file of readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(DIR, file), 'utf8'))) {
      assert.deepEqual(doc.errors, [], `${file} does not parse`);
      const obj = doc.toJS() as K8sObject | null;
      if (obj) out.push({ ...obj, file });
    }
  }
  return out;
}

const objects = loadAll();
const one = (kind: string): K8sObject => {
  const found = objects.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `expected exactly one ${kind} in examples/kubernetes, found ${found.length}`);
  return found[0]!;
};
const subset = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

test('the manifests hold a Deployment, a Service and a PodMonitor with known API versions', () => {
  assert.deepEqual(
    objects.map((o) => `${o.file}: ${o.apiVersion} ${o.kind}`),
    ['demo.yaml: apps/v1 Deployment', 'demo.yaml: v1 Service', 'podmonitor.yaml: monitoring.coreos.com/v1 PodMonitor'],
  );
});

test('the pod serves the agent on the port its annotations and its "metrics" port name', () => {
  const deploy = one('Deployment');
  const pod = deploy.spec.template!;
  const ann = pod.metadata.annotations ?? {};
  assert.equal(ann['prometheus.io/scrape'], 'true');
  assert.equal(ann['prometheus.io/path'], '/metrics');
  assert.equal(ann['prometheus.io/port'], String(DEFAULTS.port));
  assert.equal(DEFAULTS.port, 9000);
  assert.equal(pod.spec.containers.length, 1);
  const c = pod.spec.containers[0]!;
  const metrics = (c.ports ?? []).filter((p) => p.name === 'metrics');
  assert.equal(metrics.length, 1, 'exactly one container port named metrics');
  assert.equal(metrics[0]!.containerPort, Number(ann['prometheus.io/port']));

  const env = c.env ?? [];
  const nodeOptions = env.find((e) => e.name === 'NODE_OPTIONS');
  assert.ok(nodeOptions, 'NODE_OPTIONS is set');
  assert.match(nodeOptions.value ?? '', /(^|\s)--require[= ]promotel\/register(\s|$)/);
  // Nothing moves the metrics port away from the annotated one.
  const portVar = env.find((e) => e.name === 'OTEL_EXPORTER_PROMETHEUS_PORT');
  if (portVar) assert.equal(portVar.value, ann['prometheus.io/port']);
  assert.equal(env.find((e) => e.name === 'OTEL_METRICS_EXPORTER'), undefined, 'OTEL_METRICS_EXPORTER would switch the endpoint off');
  // $(VAR) references only work for variables defined earlier in the list.
  env.forEach((e, i) => {
    for (const [, ref] of (e.value ?? '').matchAll(/\$\(([A-Z0-9_]+)\)/g)) {
      assert.ok(env.slice(0, i).some((prev) => prev.name === ref), `${e.name} refers to $(${ref}), which is not defined before it`);
    }
  });
  // The app listens where its "http" port says.
  const http = (c.ports ?? []).find((p) => p.name === 'http');
  assert.equal(String(http?.containerPort), env.find((e) => e.name === 'PORT')?.value);
  // Probes point at named ports that exist.
  for (const probe of [c.readinessProbe, c.livenessProbe]) {
    const port = probe?.httpGet?.port;
    if (typeof port === 'string') assert.ok((c.ports ?? []).some((p) => p.name === port), `probe port ${port} is not a container port`);
  }
  // The agent's own health path: a probe that scrapes would end the event-loop gauges' window
  // (README, Runtime details) and hide from Prometheus a block that came before it.
  assert.equal(c.livenessProbe?.httpGet?.path, '/healthz');
  assert.equal(c.livenessProbe?.httpGet?.port, 'metrics');
});

test('the Deployment, the Service and the PodMonitor select the same pods', () => {
  const deploy = one('Deployment');
  const podLabels = deploy.spec.template!.metadata.labels;
  assert.ok(subset(deploy.spec.selector!.matchLabels!, podLabels), 'Deployment selector does not match its pod template');

  const svc = one('Service');
  const { matchLabels: _unused, ...svcSelector } = svc.spec.selector!;
  assert.ok(subset(svcSelector as Record<string, string>, podLabels), 'Service selector does not match the pods');
  const containerPorts = deploy.spec.template!.spec.containers.flatMap((c) => c.ports ?? []);
  for (const p of svc.spec.ports ?? []) {
    const target = typeof p.targetPort === 'string' ? containerPorts.find((cp) => cp.name === p.targetPort) : containerPorts.find((cp) => cp.containerPort === p.targetPort);
    assert.ok(target, `Service port ${p.name} targets ${String(p.targetPort)}, which the pod does not declare`);
  }
  const svcMetrics = (svc.spec.ports ?? []).find((p) => p.name === 'metrics');
  assert.equal(svcMetrics?.targetPort, 'metrics');
  assert.equal(svcMetrics?.port, DEFAULTS.port);

  const pm = one('PodMonitor');
  assert.ok(subset(pm.spec.selector!.matchLabels!, podLabels), 'PodMonitor selector does not match the pods');
  const endpoints = pm.spec.podMetricsEndpoints ?? [];
  assert.equal(endpoints.length, 1);
  assert.equal(endpoints[0]!.port, 'metrics');
  assert.ok(containerPorts.some((cp) => cp.name === endpoints[0]!.port && cp.containerPort === DEFAULTS.port));
  assert.equal(endpoints[0]!.path, deploy.spec.template!.metadata.annotations!['prometheus.io/path']);
});

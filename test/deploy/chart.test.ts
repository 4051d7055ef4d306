// The chart's options, each rendered on and off with the real helm (and linted), the kustomize
// components beside them with the real kubectl, and the values table of the chart's README held
// to values.yaml.

import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import {
  chartDir,
  deployDir,
  EVERY_CHART_OPTION,
  find,
  findHelm,
  findKubectl,
  monitoringFiles,
  need,
  type Obj,
  OVERLAY_API_SERVER_CIDR,
  parseDocs,
  run,
  type Tool,
  writeComponentsOverlay,
} from "./tools.ts";

const NAMESPACE = "guard";

describe("the chart's options", () => {
  let helm: Tool;
  let kubectl: Tool;
  let scratch: string | undefined;

  before(async () => {
    [helm, kubectl] = await Promise.all([findHelm(), findKubectl()]);
  });
  after(async () => {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  const render = async (...sets: string[]): Promise<Obj[]> =>
    parseDocs(
      await run(helm.path as string, [
        "template",
        "release",
        chartDir,
        "-n",
        NAMESPACE,
        ...sets.flatMap((set) => ["--set", set]),
      ]),
      `helm template ${sets.join(" ")}`,
    );
  const container = (objects: Obj[]): Obj =>
    find(objects, "Deployment", "lb-ip-guard").spec.template.spec.containers[0];
  const volumes = (objects: Obj[]): Obj[] =>
    find(objects, "Deployment", "lb-ip-guard").spec.template.spec.volumes;
  const webhookConfigurations = (objects: Obj[]): Obj[] =>
    objects.filter((o) => /WebhookConfiguration$/.test(o.kind));
  const containerPorts = (objects: Obj[]): Record<string, number> =>
    Object.fromEntries(container(objects).ports.map((p: Obj) => [p.name, p.containerPort]));
  const podLabels = (objects: Obj[]): Obj =>
    find(objects, "Deployment", "lb-ip-guard").spec.template.metadata.labels;
  const withApiServers = [
    "networkPolicy.enabled=true",
    "networkPolicy.apiServerCIDRs={10.0.0.10/32,10.0.0.11/32}",
  ];

  it("everything is off by default", async (t) => {
    if (!need(t, helm)) return;
    const objects = await render();
    const kinds = new Set(objects.map((o) => o.kind));
    for (const kind of [
      "ServiceMonitor",
      "PrometheusRule",
      "Issuer",
      "Certificate",
      "NetworkPolicy",
    ]) {
      assert.ok(!kinds.has(kind), `${kind} rendered by default`);
    }
    assert.ok(!objects.some((o) => o.kind === "ConfigMap"), "no dashboard ConfigMap");
    assert.deepEqual(container(objects).args, ["serve", "--namespace=$(POD_NAMESPACE)"]);
    for (const configuration of webhookConfigurations(objects)) {
      assert.equal(configuration.metadata.annotations, undefined);
    }
  });

  it("monitoring: the ServiceMonitor finds the Service, the rule and dashboard are the shared files", async (t) => {
    if (!need(t, helm)) return;
    const objects = await render(
      "monitoring.serviceMonitor.enabled=true",
      "monitoring.serviceMonitor.labels.release=kps",
      "monitoring.prometheusRule.enabled=true",
      "monitoring.grafanaDashboard.enabled=true",
      "monitoring.grafanaDashboard.namespace=grafana",
    );
    const monitor = find(objects, "ServiceMonitor", "lb-ip-guard", NAMESPACE);
    assert.equal(monitor.metadata.labels.release, "kps");
    const service = find(objects, "Service", "lb-ip-guard", NAMESPACE);
    for (const [label, value] of Object.entries(monitor.spec.selector.matchLabels)) {
      assert.equal(service.metadata.labels[label], value, `Service label ${label}`);
    }
    assert.ok(service.spec.ports.some((p: Obj) => p.name === monitor.spec.endpoints[0].port));

    const shared = parse(await readFile(join(monitoringFiles, "prometheusrule.yaml"), "utf8"));
    const rule = find(objects, "PrometheusRule", "lb-ip-guard", NAMESPACE);
    assert.deepEqual(rule.spec, shared.spec, "the chart's alerts are the shared file's");
    // Prometheus' own templates reach the rule untouched by Helm's.
    assert.match(JSON.stringify(rule.spec), /\{\{ \$labels\.pool \}\}/);

    const dashboard = find(objects, "ConfigMap", "lb-ip-guard-dashboard", "grafana");
    assert.equal(dashboard.metadata.labels.grafana_dashboard, "1");
    assert.equal(
      `${dashboard.data["grafana-dashboard.json"]}\n`,
      await readFile(join(monitoringFiles, "grafana-dashboard.json"), "utf8"),
      "byte for byte the shared file",
    );
  });

  it("certManager: a Certificate, served through --tls-cert, injected into both caBundles", async (t) => {
    if (!need(t, helm)) return;
    const objects = await render("certManager.enabled=true");
    const issuer = find(objects, "Issuer", "lb-ip-guard-selfsigned", NAMESPACE);
    assert.deepEqual(issuer.spec, { selfSigned: {} });
    const certificate = find(objects, "Certificate", "lb-ip-guard-serving", NAMESPACE);
    assert.deepEqual(certificate.spec.issuerRef, {
      kind: "Issuer",
      name: "lb-ip-guard-selfsigned",
    });
    // The names the API server dials: the webhooks' Service in the release namespace.
    const service = webhookConfigurations(objects)[0]?.webhooks[0].clientConfig.service;
    assert.ok(certificate.spec.dnsNames.includes(`${service.name}.${service.namespace}.svc`));
    // The server is given the certificate, so it never bootstraps its own.
    assert.deepEqual(container(objects).args.slice(2), [
      "--tls-cert=/etc/lb-ip-guard/tls/tls.crt",
      "--tls-key=/etc/lb-ip-guard/tls/tls.key",
    ]);
    const tls = volumes(objects).find((volume) => volume.name === "tls");
    assert.equal(tls?.secret.secretName, certificate.spec.secretName);
    const configurations = webhookConfigurations(objects);
    assert.equal(configurations.length, 2);
    for (const configuration of configurations) {
      assert.equal(
        configuration.metadata.annotations["cert-manager.io/inject-ca-from"],
        `${NAMESPACE}/lb-ip-guard-serving`,
      );
    }

    const given = await render(
      "certManager.enabled=true",
      "certManager.issuerRef.kind=ClusterIssuer",
      "certManager.issuerRef.name=corporate-ca",
      "webhookAnnotations.team=net",
    );
    assert.ok(!given.some((o) => o.kind === "Issuer"), "no Issuer of its own");
    assert.deepEqual(find(given, "Certificate", "lb-ip-guard-serving").spec.issuerRef, {
      kind: "ClusterIssuer",
      name: "corporate-ca",
    });
    for (const configuration of webhookConfigurations(given)) {
      assert.deepEqual(Object.keys(configuration.metadata.annotations).sort(), [
        "cert-manager.io/inject-ca-from",
        "team",
      ]);
    }
  });

  it("networkPolicy: the API servers on the webhook port, Prometheus on the metrics port, the replicas on the peer port, and no default source", async (t) => {
    if (!need(t, helm)) return;
    const objects = await render(...withApiServers, "allocator=elected");
    const policy = find(objects, "NetworkPolicy", "lb-ip-guard", NAMESPACE);
    const labels = podLabels(objects);
    for (const [label, value] of Object.entries(policy.spec.podSelector.matchLabels)) {
      assert.equal(labels[label], value, `pod label ${label}`);
    }
    const ports = containerPorts(objects);
    const [webhook, metrics, peer] = policy.spec.ingress;
    assert.deepEqual(webhook.ports, [{ port: ports.https, protocol: "TCP" }]);
    assert.deepEqual(webhook.from, [
      { ipBlock: { cidr: "10.0.0.10/32" } },
      { ipBlock: { cidr: "10.0.0.11/32" } },
    ]);
    assert.deepEqual(metrics.ports, [{ port: ports.metrics, protocol: "TCP" }]);
    assert.deepEqual(metrics.from, [
      {
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "monitoring" } },
        podSelector: { matchLabels: { "app.kubernetes.io/name": "prometheus" } },
      },
    ]);
    // The grants a follower forwards to the elected allocator: from the webhook's pods only.
    assert.deepEqual(peer.ports, [{ port: ports.peer, protocol: "TCP" }]);
    assert.deepEqual(peer.from, [
      {
        podSelector: {
          matchLabels: find(objects, "Deployment", "lb-ip-guard").spec.selector.matchLabels,
        },
      },
    ]);
    assert.equal(policy.spec.ingress.length, 3, "nothing else is admitted");
    await assert.rejects(
      render("networkPolicy.enabled=true"),
      /needs networkPolicy\.apiServerCIDRs/,
    );
  });

  it("allocator: elected gets its flag, the peer port, its address and its rule where peerPort says; claims, the default, none of them", async (t) => {
    if (!need(t, helm)) return;
    const advertised = (objects: Obj[]) =>
      container(objects).env.find((e: Obj) => e.name === "LB_IP_GUARD_ADVERTISE_ADDRESS");
    const ruledPorts = (objects: Obj[]) =>
      find(objects, "NetworkPolicy", "lb-ip-guard").spec.ingress.flatMap((rule: Obj) =>
        rule.ports.map((p: Obj) => p.port),
      );

    const moved = await render(...withApiServers, "allocator=elected", "peerPort=9444");
    assert.ok(container(moved).args.includes("--allocator=elected"));
    assert.ok(container(moved).args.includes("--peer-port=9444"));
    assert.equal(containerPorts(moved).peer, 9444);
    assert.equal(advertised(moved)?.valueFrom.fieldRef.fieldPath, "status.podIP");
    assert.deepEqual(ruledPorts(moved), [8443, 9090, 9444]);

    // The default: every replica grants on its own, claiming in etcd; nothing listens on a peer
    // port, and the flag's default needs no flag.
    const claims = await render(...withApiServers, "peerPort=9444");
    assert.deepEqual(container(claims).args, ["serve", "--namespace=$(POD_NAMESPACE)"]);
    assert.deepEqual(Object.keys(containerPorts(claims)), ["https", "metrics"]);
    assert.equal(advertised(claims), undefined);
    assert.deepEqual(ruledPorts(claims), [8443, 9090]);
  });

  it("clientAuth: the CA bundle mounted from a Secret or a ConfigMap and passed as --client-ca", async (t) => {
    if (!need(t, helm)) return;
    for (const [value, source] of [
      ["clientAuth.caSecret=apiserver-ca", { secret: { secretName: "apiserver-ca" } }],
      ["clientAuth.caConfigMap=apiserver-ca", { configMap: { name: "apiserver-ca" } }],
    ] as const) {
      const objects = await render(value, "clientAuth.key=bundle.pem");
      assert.ok(
        container(objects).args.includes("--client-ca=/etc/lb-ip-guard/client-ca/bundle.pem"),
      );
      assert.ok(
        container(objects).volumeMounts.some(
          (m: Obj) => m.name === "client-ca" && m.mountPath === "/etc/lb-ip-guard/client-ca",
        ),
      );
      const volume = volumes(objects).find((v) => v.name === "client-ca");
      const [kind, reference] = Object.entries(source)[0] as [string, Obj];
      assert.deepEqual(volume?.[kind], {
        ...reference,
        items: [{ key: "bundle.pem", path: "bundle.pem" }],
      });
    }
    await assert.rejects(
      render("clientAuth.caSecret=a", "clientAuth.caConfigMap=b"),
      /give caSecret or caConfigMap, not both/,
    );
  });

  it("helm lint passes with every option on", async (t) => {
    if (!need(t, helm)) return;
    const out = await run(helm.path as string, [
      "lint",
      chartDir,
      "--strict",
      ...EVERY_CHART_OPTION.flatMap((set) => ["--set", set]),
    ]);
    assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it("the kustomize components do what the chart's options do", async (t) => {
    if (!need(t, helm, kubectl)) return;
    scratch ??= await mkdtemp(join(tmpdir(), "lb-ip-guard-components-"));
    await writeComponentsOverlay(scratch);
    const built = parseDocs(await run(kubectl.path as string, ["kustomize", scratch]), "overlay");
    const chart = await render(
      "networkPolicy.enabled=true",
      `networkPolicy.apiServerCIDRs={${OVERLAY_API_SERVER_CIDR}}`,
      "clientAuth.caConfigMap=lb-ip-guard-client-ca",
    );
    assert.deepEqual(
      find(built, "NetworkPolicy", "lb-ip-guard").spec,
      find(chart, "NetworkPolicy", "lb-ip-guard").spec,
    );
    const generated = built.find((o) => o.kind === "ConfigMap")?.metadata.name;
    assert.ok(container(built).args.includes("--client-ca=/etc/lb-ip-guard/client-ca/ca.crt"));
    assert.deepEqual(
      volumes(built).find((v) => v.name === "client-ca"),
      {
        name: "client-ca",
        configMap: { name: generated, items: [{ key: "ca.crt", path: "ca.crt" }] },
      },
      "the generated ConfigMap, under its hashed name",
    );
    // Unpatched, the policy cannot be applied by mistake: its source is no CIDR.
    const shipped = parseDocs(
      await run(kubectl.path as string, [
        "kustomize",
        join(deployDir, "components", "network-policy"),
      ]),
      "component",
    );
    assert.equal(
      find(shipped, "NetworkPolicy", "lb-ip-guard").spec.ingress[0].from[0].ipBlock.cidr,
      "API-SERVER-CIDR",
    );
  });
});

describe("the chart's README", () => {
  it("documents every value with its default, and no value that is not there", async () => {
    const values = parse(await readFile(join(chartDir, "values.yaml"), "utf8")) as Obj;
    const readme = await readFile(join(chartDir, "README.md"), "utf8");
    const rows = new Map(
      [...readme.matchAll(/^\| `([\w.]+)` +\| `(.*?)` +\|/gm)].map(([, name, value]) => [
        name as string,
        value as string,
      ]),
    );
    assert.ok(rows.size >= 30, `${rows.size} rows`);
    const documented = new Set<string>();
    const walk = (node: Obj, path: string[]) => {
      for (const [name, value] of Object.entries(node)) {
        const key = [...path, name].join(".");
        if (rows.has(key)) {
          assert.equal(rows.get(key), JSON.stringify(value), `default of ${key}`);
          documented.add(key);
        } else if (value !== null && typeof value === "object" && !Array.isArray(value)) {
          assert.ok(Object.keys(value).length > 0, `${key} is not in the table`);
          walk(value, [...path, name]);
        } else {
          assert.fail(`${key} is not in the table`);
        }
      }
    };
    walk(values, []);
    assert.deepEqual(
      [...rows.keys()].filter((row) => !documented.has(row)),
      [],
      "rows without a value",
    );
  });
});

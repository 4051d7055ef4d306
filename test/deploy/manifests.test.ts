// The shipped manifests: the kustomize base (deploy/), the Helm chart (deploy/helm/lb-ip-guard)
// and the monitoring assets (deploy/monitoring). The base and the chart's default render must
// agree on everything the API server acts on (webhooks, RBAC, the Deployment), and both must
// keep the pod locked down.
//
// kubectl and helm come from ./tools.ts (built on first use; skipped only where they cannot be).

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { parse } from "yaml";
import { DURATION_BUCKETS, Metrics } from "../../src/server/metrics.ts";
import {
  chartDir,
  deployDir,
  find,
  findHelm,
  findKubectl,
  key,
  monitoringFiles,
  need,
  type Obj,
  parseDocs,
  repoRoot,
  run,
  type Tool,
} from "./tools.ts";

/** The fields of a webhook the API server acts on (clientConfig apart, which the harness swaps). */
const WEBHOOK_FIELDS = [
  "name",
  "clientConfig",
  "rules",
  "matchConditions",
  "sideEffects",
  "failurePolicy",
  "timeoutSeconds",
  "namespaceSelector",
  "objectSelector",
  "admissionReviewVersions",
  "reinvocationPolicy",
  "matchPolicy",
] as const;

/**
 * CEL ignores whitespace outside string literals (these expressions have none inside), and YAML
 * parsers disagree on the folded (`>-`) scalar: kustomize keeps an extra blank line after the
 * first line where the next is more indented. Compare expressions with whitespace collapsed.
 */
const cel = (expression: string) => expression.replace(/\s+/g, " ").trim();

function webhooks(objs: Obj[], kind: string): Obj[] {
  const config = find(objs, kind, "lb-ip-guard");
  return (config.webhooks as Obj[]).map((w) => {
    const picked: Obj = Object.fromEntries(
      WEBHOOK_FIELDS.filter((f) => f in w).map((f) => [f, w[f]]),
    );
    if (picked.matchConditions) {
      picked.matchConditions = (picked.matchConditions as Obj[]).map((m) => ({
        ...m,
        expression: cel(m.expression),
      }));
    }
    return picked;
  });
}

/** RBAC rules as a set: order of rules and of list entries carries no meaning. */
function ruleSet(rules: Obj[]): string[] {
  return rules
    .map((r) =>
      JSON.stringify(
        Object.fromEntries(
          Object.keys(r)
            .sort()
            .map((k) => [k, Array.isArray(r[k]) ? [...r[k]].sort() : r[k]]),
        ),
      ),
    )
    .sort();
}

const RBAC_KINDS = new Set(["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]);

function rbac(objs: Obj[]): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const o of objs.filter((x) => RBAC_KINDS.has(x.kind))) {
    out.set(
      key(o),
      o.kind.endsWith("Binding")
        ? { roleRef: o.roleRef, subjects: o.subjects }
        : { rules: ruleSet(o.rules ?? []) },
    );
  }
  return out;
}

/** Asserts the hardening and the probes of the Deployment of a render. */
function checkDeployment(objs: Obj[], render: string): void {
  const deploy = find(objs, "Deployment", "lb-ip-guard", "lb-ip-guard");
  const pod = deploy.spec.template.spec as Obj;
  assert.equal(deploy.spec.replicas, 2, `${render}: replicas`);
  assert.equal(pod.serviceAccountName, "lb-ip-guard", `${render}: serviceAccountName`);
  // The Service lb-ip-guard's link variable LB_IP_GUARD_PORT=tcp://… is the server's --port:
  // with service links on, every pod crashed at start (found on the e2e node, node.test.ts).
  assert.equal(pod.enableServiceLinks, false, `${render}: enableServiceLinks`);
  assert.equal(pod.hostNetwork ?? false, false, `${render}: hostNetwork`);
  assert.equal(pod.securityContext?.runAsNonRoot, true, `${render}: pod runAsNonRoot`);
  assert.equal(pod.securityContext?.runAsUser, 65532, `${render}: pod runAsUser`);
  assert.equal(
    pod.securityContext?.seccompProfile?.type,
    "RuntimeDefault",
    `${render}: pod seccomp`,
  );

  const [anti] =
    pod.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [];
  assert.equal(
    anti?.podAffinityTerm?.topologyKey,
    "kubernetes.io/hostname",
    `${render}: anti-affinity`,
  );
  assert.deepEqual(
    anti?.podAffinityTerm?.labelSelector?.matchLabels,
    deploy.spec.selector.matchLabels,
    `${render}: anti-affinity selects the webhook's own pods`,
  );

  assert.equal(pod.containers.length, 1, `${render}: one container`);
  const c = pod.containers[0] as Obj;
  const sc = c.securityContext as Obj;
  assert.equal(sc.allowPrivilegeEscalation, false, `${render}: allowPrivilegeEscalation`);
  assert.equal(sc.readOnlyRootFilesystem, true, `${render}: readOnlyRootFilesystem`);
  assert.equal(sc.runAsNonRoot, true, `${render}: runAsNonRoot`);
  assert.equal(sc.runAsUser, 65532, `${render}: runAsUser`);
  assert.equal(sc.privileged ?? false, false, `${render}: privileged`);
  assert.deepEqual(sc.capabilities, { drop: ["ALL"] }, `${render}: capabilities`);
  assert.equal(sc.seccompProfile?.type, "RuntimeDefault", `${render}: seccomp`);

  assert.match(c.image, /^ghcr\.io\/lb-ip-guard\/lb-ip-guard:0\.1\.0$/, `${render}: image`);
  assert.deepEqual(c.args, ["serve", "--namespace=$(POD_NAMESPACE)"], `${render}: args`);
  const podNs = (c.env as Obj[]).find((e) => e.name === "POD_NAMESPACE");
  assert.equal(
    podNs?.valueFrom?.fieldRef?.fieldPath,
    "metadata.namespace",
    `${render}: POD_NAMESPACE`,
  );

  // The default allocator claims in etcd (ADR 0017): no replica dials another.
  const advertised = (c.env as Obj[]).find((e) => e.name === "LB_IP_GUARD_ADVERTISE_ADDRESS");
  assert.equal(advertised, undefined, `${render}: LB_IP_GUARD_ADVERTISE_ADDRESS`);

  const ports = new Map<string, number>((c.ports as Obj[]).map((p) => [p.name, p.containerPort]));
  assert.deepEqual(Object.fromEntries(ports), { https: 8443, metrics: 9090 }, `${render}: ports`);
  const portOf = (p: number | string) => (typeof p === "number" ? p : ports.get(p));
  for (const [probe, path] of [
    ["livenessProbe", "/healthz"],
    ["readinessProbe", "/readyz"],
  ] as const) {
    const get = c[probe]?.httpGet as Obj | undefined;
    assert.ok(get, `${render}: ${probe} is an httpGet`);
    assert.equal(get.path, path, `${render}: ${probe} path`);
    // The metrics port: with --client-ca the admission port refuses a kubelet's probe.
    assert.equal(get.scheme, "HTTP", `${render}: ${probe} scheme`);
    assert.equal(portOf(get.port), 9090, `${render}: ${probe} port`);
  }

  assert.ok(c.resources?.requests?.cpu, `${render}: cpu request`);
  assert.ok(c.resources?.requests?.memory, `${render}: memory request`);
  assert.ok(c.resources?.limits?.memory, `${render}: memory limit`);

  const tmp = (c.volumeMounts as Obj[]).find((m) => m.mountPath === "/tmp");
  assert.ok(tmp, `${render}: /tmp is mounted`);
  const vol = (pod.volumes as Obj[]).find((v) => v.name === tmp.name);
  assert.ok(vol?.emptyDir, `${render}: /tmp is an emptyDir`);

  const pdb = find(objs, "PodDisruptionBudget", "lb-ip-guard", "lb-ip-guard");
  assert.equal(pdb.spec.minAvailable, 1, `${render}: PDB minAvailable`);
  assert.deepEqual(pdb.spec.selector.matchLabels, deploy.spec.selector.matchLabels);

  const svc = find(objs, "Service", "lb-ip-guard", "lb-ip-guard");
  assert.deepEqual(
    svc.spec.selector,
    deploy.spec.selector.matchLabels,
    `${render}: Service selector`,
  );
  // No peer port: replicas dial the elected allocator's pod, never one the Service picks.
  const svcPorts = (svc.spec.ports as Obj[]).map((p) => [p.port, portOf(p.targetPort)]);
  assert.deepEqual(svcPorts, [
    [443, 8443],
    [9090, 9090],
  ]);
}

describe("deploy/: kustomize base and Helm chart", () => {
  let kubectl: Tool;
  let helm: Tool;
  let base: Obj[] = [];
  let chart: Obj[] = [];

  before(async () => {
    [kubectl, helm] = await Promise.all([findKubectl(), findHelm()]);
    if (kubectl.path) {
      base = parseDocs(
        await run(kubectl.path, ["kustomize", deployDir]),
        "kubectl kustomize deploy/",
      );
    }
    if (helm.path) {
      // With its crds/: what `helm install` creates first.
      const out = await run(helm.path, [
        "template",
        "lb-ip-guard",
        chartDir,
        "-n",
        "lb-ip-guard",
        "--include-crds",
      ]);
      chart = parseDocs(out, "helm template");
    }
  });

  it("the base holds the webhook's objects and its own CRD, not MetalLB's", (t) => {
    if (!need(t, kubectl)) return;
    assert.deepEqual(base.map(key).sort(), [
      "ClusterRole//lb-ip-guard",
      "ClusterRoleBinding//lb-ip-guard",
      "CustomResourceDefinition//addressreservations.lb-ip-guard.dev",
      "Deployment/lb-ip-guard/lb-ip-guard",
      "MutatingWebhookConfiguration//lb-ip-guard",
      "Namespace//lb-ip-guard",
      "PodDisruptionBudget/lb-ip-guard/lb-ip-guard",
      "Role/lb-ip-guard/lb-ip-guard",
      "Role/metallb-system/lb-ip-guard-metallb-config",
      "RoleBinding/lb-ip-guard/lb-ip-guard",
      "RoleBinding/metallb-system/lb-ip-guard-metallb-config",
      "Service/lb-ip-guard/lb-ip-guard",
      "ServiceAccount/lb-ip-guard/lb-ip-guard",
      "ValidatingWebhookConfiguration//lb-ip-guard",
    ]);
  });

  it("the chart renders the same objects, less the Namespace (helm --create-namespace)", (t) => {
    if (!need(t, kubectl, helm)) return;
    const expected = base.map(key).filter((k) => !k.startsWith("Namespace/"));
    assert.deepEqual(chart.map(key).sort(), expected.sort());
  });

  it("the chart's crds/ holds the base's AddressReservation CRD, byte for byte", async (t) => {
    if (!need(t, kubectl, helm)) return;
    const file = "addressreservations.lb-ip-guard.dev.yaml";
    const [shipped, copy] = await Promise.all([
      readFile(join(deployDir, "crds", file), "utf8"),
      readFile(join(chartDir, "crds", file), "utf8"),
    ]);
    assert.equal(copy, shipped, `deploy/helm/lb-ip-guard/crds/${file} differs from deploy/crds/`);
    const crd = find(base, "CustomResourceDefinition", "addressreservations.lb-ip-guard.dev");
    assert.deepEqual(find(chart, "CustomResourceDefinition", crd.metadata.name).spec, crd.spec);
    assert.equal(crd.spec.scope, "Namespaced");
    const [version] = crd.spec.versions;
    assert.equal(version.name, "v1alpha1");
    assert.deepEqual(version.subresources, { status: {} }, "status is a subresource");
    const addresses = version.schema.openAPIV3Schema.properties.spec.properties.addresses;
    assert.deepEqual([addresses.minItems, addresses.maxItems], [1, 2]);
    assert.deepEqual(
      version.additionalPrinterColumns.map((c: Obj) => c.jsonPath),
      [".spec.addresses", ".spec.serviceName", ".status.holder", ".metadata.creationTimestamp"],
    );
  });

  it("webhook configurations agree, and match deploy/webhooks.yaml as written", async (t) => {
    if (!need(t, kubectl, helm)) return;
    const file = parseDocs(
      await readFile(join(deployDir, "webhooks.yaml"), "utf8"),
      "webhooks.yaml",
    );
    for (const kind of ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]) {
      assert.deepEqual(webhooks(chart, kind), webhooks(base, kind), `${kind}: chart vs base`);
      assert.deepEqual(webhooks(base, kind), webhooks(file, kind), `${kind}: base vs file`);
    }
    const [mutate] = webhooks(base, "MutatingWebhookConfiguration");
    const [validate] = webhooks(base, "ValidatingWebhookConfiguration");
    assert.equal(mutate?.failurePolicy, "Ignore", "mutation fails open (docs/decisions/0003)");
    assert.equal(validate?.failurePolicy, "Fail", "validation fails closed (docs/decisions/0003)");
    const reservations = webhooks(base, "ValidatingWebhookConfiguration").find(
      (w) => w.name === "validate-reservations.lb-ip-guard.dev",
    );
    assert.deepEqual(reservations?.rules, [
      {
        apiGroups: ["lb-ip-guard.dev"],
        apiVersions: ["v1alpha1"],
        operations: ["CREATE", "UPDATE"],
        resources: ["addressreservations"],
        scope: "Namespaced",
      },
    ]);
    assert.equal(reservations?.failurePolicy, "Fail", "reservations fail closed too");
    assert.equal(reservations?.namespaceSelector, undefined, "in every namespace");
    for (const w of [mutate, validate]) {
      assert.deepEqual(w?.clientConfig?.service?.namespace, "lb-ip-guard");
      assert.equal(w?.clientConfig?.service?.name, "lb-ip-guard");
      assert.ok(!w?.clientConfig?.caBundle, "caBundle is left to the server at run time");
      const excluded = w?.namespaceSelector?.matchExpressions?.[0]?.values ?? [];
      assert.ok(excluded.includes("lb-ip-guard"), "the webhook never gates its own namespace");
    }
  });

  it("RBAC agrees and stays least-privilege", (t) => {
    if (!need(t, kubectl, helm)) return;
    assert.deepEqual(rbac(chart), rbac(base));
    const rules = (kind: string, name: string, ns?: string) =>
      ruleSet(find(base, kind, name, ns).rules);
    assert.deepEqual(
      rules("ClusterRole", "lb-ip-guard"),
      ruleSet([
        { apiGroups: [""], resources: ["services", "namespaces"], verbs: ["list", "watch"] },
        { apiGroups: [""], resources: ["events"], verbs: ["create"] },
        { apiGroups: ["metallb.io"], resources: ["ipaddresspools"], verbs: ["list", "watch"] },
        // Reservations read; of them only status (the holder) written.
        {
          apiGroups: ["lb-ip-guard.dev"],
          resources: ["addressreservations"],
          verbs: ["get", "list", "watch"],
        },
        {
          apiGroups: ["lb-ip-guard.dev"],
          resources: ["addressreservations/status"],
          verbs: ["update", "patch"],
        },
        {
          apiGroups: ["admissionregistration.k8s.io"],
          resources: ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
          resourceNames: ["lb-ip-guard"],
          verbs: ["get", "patch"],
        },
      ]),
    );
    assert.deepEqual(
      rules("Role", "lb-ip-guard-metallb-config", "metallb-system"),
      ruleSet([
        // The legacy ConfigMap by name: its list and watch select metadata.name=config.
        {
          apiGroups: [""],
          resources: ["configmaps"],
          resourceNames: ["config"],
          verbs: ["get", "list", "watch"],
        },
        // The MetalLB release, from the image of its controller Deployment (--metallb-version auto).
        { apiGroups: ["apps"], resources: ["deployments"], verbs: ["list"] },
      ]),
    );
    assert.deepEqual(
      rules("Role", "lb-ip-guard", "lb-ip-guard"),
      ruleSet([
        {
          apiGroups: ["coordination.k8s.io"],
          resources: ["leases"],
          verbs: ["get", "list", "watch", "create", "update", "delete"],
        },
        // The certificate Secret by name; create cannot be limited to a name.
        { apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
        {
          apiGroups: [""],
          resources: ["secrets"],
          resourceNames: ["lb-ip-guard-tls"],
          verbs: ["get", "list", "watch", "update"],
        },
      ]),
    );
    for (const o of base.filter((x) => x.kind.endsWith("Binding"))) {
      assert.deepEqual(
        o.subjects,
        [{ kind: "ServiceAccount", name: "lb-ip-guard", namespace: "lb-ip-guard" }],
        `${key(o)} binds only the webhook's ServiceAccount`,
      );
    }
  });

  it("the Deployment is hardened and probed, in both renders, and they agree", (t) => {
    if (!need(t, kubectl, helm)) return;
    checkDeployment(base, "kustomize");
    checkDeployment(chart, "helm");
    for (const kind of ["Deployment", "PodDisruptionBudget", "Service"]) {
      assert.deepEqual(
        find(chart, kind, "lb-ip-guard").spec,
        find(base, kind, "lb-ip-guard").spec,
        `${kind}.spec: chart vs base`,
      );
    }
    const ns = find(base, "Namespace", "lb-ip-guard");
    assert.equal(ns.metadata.labels["pod-security.kubernetes.io/enforce"], "restricted");
  });

  it("the chart's values reach the objects", async (t) => {
    if (!need(t, helm)) return;
    const set = [
      "replicaCount=1",
      "image.repository=registry.example/lbg",
      "image.tag=9.9.9",
      "image.pullPolicy=Always",
      "ipTarget=annotation",
      "metallbNamespace=metallb",
      "loadBalancerClass=metallb.io/metallb",
      "metallbVersion=v0.12.1",
      "allocate=annotated",
      "allocator=elected",
      "peerPort=9444",
      "failurePolicy.mutating=Fail",
      "failurePolicy.validating=Ignore",
      "timeoutSeconds=10",
      "resources.limits.memory=512Mi",
      "tls.secretName=guard-tls",
      "webhookAnnotations.cert-manager\\.io/inject-ca-from=net-guard/guard-serving",
    ];
    const out = await run(helm.path as string, [
      "template",
      "guard",
      chartDir,
      "-n",
      "net-guard",
      ...set.flatMap((s) => ["--set", s]),
    ]);
    const objs = parseDocs(out, "helm template --set");
    const deploy = find(objs, "Deployment", "lb-ip-guard", "net-guard");
    const c = deploy.spec.template.spec.containers[0];
    assert.equal(deploy.spec.replicas, 1);
    assert.equal(c.image, "registry.example/lbg:9.9.9");
    assert.equal(c.imagePullPolicy, "Always");
    assert.equal(c.resources.limits.memory, "512Mi");
    assert.equal((c.ports as Obj[]).find((p) => p.name === "peer")?.containerPort, 9444);
    assert.deepEqual(c.args, [
      "serve",
      "--namespace=$(POD_NAMESPACE)",
      "--ip-target=annotation",
      "--metallb-namespace=metallb",
      "--load-balancer-class=metallb.io/metallb",
      "--metallb-version=v0.12.1",
      "--allocate=annotated",
      "--allocator=elected",
      "--peer-port=9444",
      "--tls-cert=/etc/lb-ip-guard/tls/tls.crt",
      "--tls-key=/etc/lb-ip-guard/tls/tls.key",
    ]);
    const tlsMount = (c.volumeMounts as Obj[]).find((m) => m.mountPath === "/etc/lb-ip-guard/tls");
    assert.equal(tlsMount?.readOnly, true);
    const tlsVolume = (deploy.spec.template.spec.volumes as Obj[]).find(
      (v) => v.name === tlsMount?.name,
    );
    assert.equal(tlsVolume?.secret?.secretName, "guard-tls");
    // 0440: the key is readable by the pod's group (fsGroup) only, never by other users.
    assert.equal(tlsVolume?.secret?.defaultMode, 0o440);
    assert.ok(!objs.some((o) => o.kind === "PodDisruptionBudget"), "no PDB for one replica");
    find(objs, "Role", "lb-ip-guard-metallb-config", "metallb");
    const [mutate] = find(objs, "MutatingWebhookConfiguration", "lb-ip-guard").webhooks;
    const [validate] = find(objs, "ValidatingWebhookConfiguration", "lb-ip-guard").webhooks;
    assert.equal(mutate.failurePolicy, "Fail");
    assert.equal(validate.failurePolicy, "Ignore");
    for (const kind of ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]) {
      const annotations = find(objs, kind, "lb-ip-guard").metadata.annotations;
      assert.equal(annotations?.["cert-manager.io/inject-ca-from"], "net-guard/guard-serving");
    }
    for (const w of [mutate, validate]) {
      assert.equal(w.timeoutSeconds, 10);
      assert.equal(w.clientConfig.service.namespace, "net-guard");
      assert.deepEqual(w.namespaceSelector.matchExpressions[0].values, [
        "kube-system",
        "net-guard",
      ]);
    }
    for (const o of objs.filter((x) => x.kind.endsWith("Binding"))) {
      assert.equal(o.subjects[0].namespace, "net-guard", `${key(o)} subject namespace`);
    }
  });

  it("the chart refuses invalid values and passes helm lint", async (t) => {
    if (!need(t, helm)) return;
    const h = helm.path as string;
    for (const bad of [
      "ipTarget=status",
      "failurePolicy.validating=Maybe",
      "timeoutSeconds=31",
      "metallbVersion=latest",
      "allocate=some",
      "allocator=leader",
      "peerPort=0",
      // Only the elected allocator listens on the peer port.
      "peerPort=8443,allocator=elected",
      "peerPort=9090,allocator=elected",
    ]) {
      await assert.rejects(
        run(h, ["template", "x", chartDir, "--set", bad]),
        (err: Error) => err.message.includes(bad.split("=")[0]?.split(".").pop() ?? bad),
        `--set ${bad} is refused`,
      );
    }
    await run(h, ["lint", "--strict", chartDir]);
  });

  it("deploy/test-crds holds only the IPAddressPool CRD", async (t) => {
    if (!need(t, kubectl)) return;
    const objs = parseDocs(
      await run(kubectl.path as string, ["kustomize", join(deployDir, "test-crds")]),
      "kubectl kustomize deploy/test-crds",
    );
    assert.deepEqual(objs.map(key), ["CustomResourceDefinition//ipaddresspools.metallb.io"]);
  });

  it("deploy/monitoring renders the rule, the ServiceMonitor and the dashboard ConfigMap", async (t) => {
    if (!need(t, kubectl)) return;
    const objs = parseDocs(
      await run(kubectl.path as string, ["kustomize", join(deployDir, "monitoring")]),
      "kubectl kustomize deploy/monitoring",
    );
    assert.deepEqual(objs.map(key).sort(), [
      "ConfigMap/lb-ip-guard/lb-ip-guard-dashboard",
      "PrometheusRule/lb-ip-guard/lb-ip-guard",
      "ServiceMonitor/lb-ip-guard/lb-ip-guard",
    ]);
    const cm = find(objs, "ConfigMap", "lb-ip-guard-dashboard");
    assert.equal(cm.metadata.labels.grafana_dashboard, "1");
    const dashboard = await readFile(join(monitoringFiles, "grafana-dashboard.json"), "utf8");
    assert.equal(cm.data["grafana-dashboard.json"], dashboard);
    // The ServiceMonitor finds the Service of the base by its labels and port name.
    const sm = find(objs, "ServiceMonitor", "lb-ip-guard");
    const svc = find(base, "Service", "lb-ip-guard");
    for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) {
      assert.equal(svc.metadata.labels[k], v, `Service label ${k}`);
    }
    assert.ok((svc.spec.ports as Obj[]).some((p) => p.name === sm.spec.endpoints[0].port));
  });
});

describe("the alerts and the dashboard (no tools needed)", () => {
  const balanced = (expr: string) => {
    let depth = 0;
    for (const ch of expr) {
      depth +=
        ch === "(" || ch === "{" || ch === "["
          ? 1
          : ch === ")" || ch === "}" || ch === "]"
            ? -1
            : 0;
      if (depth < 0) return false;
    }
    return depth === 0;
  };

  it("the Grafana dashboard parses and charts pools, decisions, latency and health", async () => {
    const text = await readFile(join(monitoringFiles, "grafana-dashboard.json"), "utf8");
    const dash = JSON.parse(text) as Obj;
    assert.equal(dash.uid, "lb-ip-guard");
    const panels = (dash.panels as Obj[]).filter((p) => p.type !== "row");
    const exprs = panels.flatMap((p) => (p.targets ?? []).map((x: Obj) => x.expr as string));
    for (const e of exprs) assert.ok(balanced(e), `unbalanced: ${e}`);
    const ids = (dash.panels as Obj[]).map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
    assert.ok(exprs.some((e) => e.includes("lb_ip_guard_pool_used_addresses")));
    assert.ok(exprs.some((e) => e.includes("lb_ip_guard_pool_capacity_addresses")));
    assert.ok(
      exprs.some((e) => /by \(pool, family/.test(e)),
      "per pool and family",
    );
    assert.ok(
      exprs.some((e) => /by \(.*reason.*\) \(rate\(lb_ip_guard_admission_requests_total/.test(e)),
      "decisions per reason",
    );
    assert.ok(
      exprs.includes("min(lb_ip_guard_serving_certificate_expiration_timestamp_seconds) - time()"),
      "time left on the serving certificate",
    );
    assert.ok(exprs.some((e) => e.includes('lb_ip_guard_claims_total{result="error"}')));
    assert.ok(exprs.some((e) => e.includes("lb_ip_guard_watch_failing")));
    for (const p of ["0.5", "0.95", "0.99"]) {
      assert.ok(
        exprs.some((e) =>
          e.startsWith(
            `histogram_quantile(${p}, sum by (le) (rate(lb_ip_guard_admission_duration_seconds_bucket`,
          ),
        ),
        `p${p} latency`,
      );
    }
  });

  it("the PrometheusRule parses and alerts on pools, errors, claims, the allocator, certificates and latency within the timeout", async () => {
    const rule = parse(await readFile(join(monitoringFiles, "prometheusrule.yaml"), "utf8")) as Obj;
    assert.equal(rule.apiVersion, "monitoring.coreos.com/v1");
    assert.equal(rule.kind, "PrometheusRule");
    const alerts = new Map<string, Obj>(
      (rule.spec.groups as Obj[]).flatMap((g) => (g.rules as Obj[]).map((r) => [r.alert, r])),
    );
    for (const r of alerts.values()) {
      assert.ok(balanced(r.expr), `${r.alert}: unbalanced expression`);
      assert.ok(r.labels?.severity, `${r.alert}: severity`);
      assert.ok(r.annotations?.summary && r.annotations?.description, `${r.alert}: annotations`);
    }
    const full = alerts.get("LbIpGuardPoolNearlyFull");
    assert.match(
      full?.expr,
      /pool_used_addresses[\s\S]*\/[\s\S]*pool_capacity_addresses[\s\S]*> 0\.9\s*$/,
    );
    assert.match(full?.expr, /by \(pool, family\)/);
    const errors = alerts.get("LbIpGuardAdmissionErrors");
    assert.match(errors?.expr, /lb_ip_guard_admission_requests_total\{decision="error"\}/);
    assert.match(alerts.get("LbIpGuardWebhookCallsFailing")?.expr, /code=~"5\.\."/);
    assert.match(alerts.get("LbIpGuardClaimsFailing")?.expr, /claims_total\{result="error"\}/);
    // The replicas together: none granting (the max over all of them is 0) for longer than a
    // take-over lasts.
    assert.match(alerts.get("LbIpGuardNoAllocator")?.expr, /^max\(lb_ip_guard_allocator\) == 0/);
    assert.equal(alerts.get("LbIpGuardNoAllocator")?.for, "2m");
    const expiring = alerts.get("LbIpGuardCertificateExpiring");
    assert.match(
      expiring?.expr,
      /lb_ip_guard_serving_certificate_expiration_timestamp_seconds\)\s*- time\(\) < 14 \* 86400/,
    );

    // p99 above a bound, as the share of reviews over a bucket boundary: the boundary must be a
    // bucket of the histogram, and at most half of every webhook's timeout.
    const slow = alerts.get("LbIpGuardSlowAdmission");
    assert.match(slow?.expr, /lb_ip_guard_admission_duration_seconds_count/);
    const le = /lb_ip_guard_admission_duration_seconds_bucket\{le="([\d.]+)"\}/.exec(
      slow?.expr,
    )?.[1];
    assert.ok(le, "the latency alert counts reviews over one bucket boundary");
    assert.match(slow?.expr, />\s*0\.01\s*$/, "over 1 % of reviews: p99");
    assert.ok(DURATION_BUCKETS.includes(Number(le)), `le="${le}" is a bucket of the histogram`);
    const hooks = parseDocs(
      await readFile(join(deployDir, "webhooks.yaml"), "utf8"),
      "webhooks.yaml",
    );
    const timeouts = hooks.flatMap((h) => (h.webhooks as Obj[]).map((w) => w.timeoutSeconds ?? 10));
    assert.ok(timeouts.length > 0);
    for (const timeout of timeouts) {
      assert.ok(Number(le) <= timeout / 2, `p99 alert at ${le}s vs timeout ${timeout}s`);
    }
  });

  it("the dashboard and the alerts query only metrics the webhook exports", async () => {
    const exported = new Set(
      (await new Metrics({ view: () => undefined }).registry.getMetricsAsJSON()).flatMap(
        (metric) =>
          String(metric.type) === "histogram"
            ? ["_bucket", "_count", "_sum"].map((suffix) => `${metric.name}${suffix}`)
            : [metric.name],
      ),
    );
    const queried = new Set<string>();
    for (const file of ["grafana-dashboard.json", "prometheusrule.yaml"]) {
      const text = await readFile(join(monitoringFiles, file), "utf8");
      for (const [name] of text.matchAll(/lb_ip_guard_[a-z_]+/g)) queried.add(name);
    }
    assert.ok(queried.size >= 6, [...queried].join(", "));
    for (const name of queried) assert.ok(exported.has(name), `${name} is not exported`);
  });

  it("the Dockerfile runs the package's bin as the user the manifests require", async () => {
    const dockerfile = await readFile(join(repoRoot, "Dockerfile"), "utf8");
    const pkg = JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")) as Obj;
    const entry = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1];
    assert.ok(entry, "ENTRYPOINT in exec form");
    assert.ok((JSON.parse(entry) as string[]).includes(pkg.bin["lb-ip-guard"]), "runs the bin");
    assert.match(dockerfile, /^CMD \["serve"\]$/m);
    assert.match(dockerfile, /^USER 65532(:65532)?$/m, "matches runAsUser 65532");
    const deployment = parseDocs(await readFile(join(deployDir, "deployment.yaml"), "utf8"), "x");
    const pod = find(deployment, "Deployment", "lb-ip-guard").spec.template.spec;
    assert.equal(pod.securityContext.runAsUser, 65532);
  });
});

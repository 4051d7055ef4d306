// Smoke test of the e2e harness against a real etcd + kube-apiserver + kubectl, and of the
// shipped deploy/ manifests: the IPAddressPool CRD and the webhook matchConditions.

import assert from "node:assert/strict";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { after, before, it } from "node:test";
import {
  type ControlPlane,
  describeE2E,
  generateServingCertificate,
  startControlPlane,
} from "./harness.ts";

const service = (
  name: string,
  extra: { type?: string; annotations?: Record<string, string>; loadBalancerIP?: string } = {},
) =>
  JSON.stringify({
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: "default", annotations: extra.annotations ?? {} },
    spec: {
      type: extra.type ?? "ClusterIP",
      ...(extra.loadBalancerIP !== undefined && { loadBalancerIP: extra.loadBalancerIP }),
      selector: { app: name },
      ports: [{ port: 80 }],
    },
  });

await describeE2E("control plane", () => {
  let cp: ControlPlane;

  before(async () => {
    cp = await startControlPlane();
  });
  after(async () => {
    await cp?.stop();
  });

  it("applies a Service from stdin and shows it", async () => {
    await cp.kubectl(["apply", "-f", "-"], { stdin: service("web", { type: "LoadBalancer" }) });
    const got = JSON.parse((await cp.kubectl(["get", "svc", "web", "-o", "json"])).stdout);
    assert.equal(got.metadata.name, "web");
    assert.equal(got.spec.type, "LoadBalancer");
    assert.match(got.spec.clusterIP, /^10\.0\.0\.\d+$/);
  });

  it("answers apply --dry-run=server without storing anything", async () => {
    const res = await cp.kubectl(["apply", "--dry-run=server", "-f", "-"], {
      stdin: service("dry"),
    });
    assert.match(res.stdout, /service\/dry created \(server dry run\)/);
    const get = await cp.kubectl(["get", "svc", "dry"], { allowFailure: true });
    assert.notEqual(get.code, 0);
    assert.match(get.stderr, /NotFound/);
  });

  it("serves the IPAddressPool CRD with its schema", async () => {
    const pool = {
      apiVersion: "metallb.io/v1beta1",
      kind: "IPAddressPool",
      metadata: { name: "default", namespace: "default" },
      spec: {
        addresses: ["192.168.35.100-192.168.35.120", "fd00::/120"],
        avoidBuggyIPs: true,
        serviceAllocation: {
          priority: 10,
          namespaces: ["team-a"],
          namespaceSelectors: [{ matchLabels: { team: "a" } }],
          serviceSelectors: [
            { matchExpressions: [{ key: "app", operator: "In", values: ["web"] }] },
          ],
        },
      },
    };
    await cp.kubectl(["apply", "-f", "-"], { stdin: JSON.stringify(pool) });
    const got = JSON.parse(
      (await cp.kubectl(["get", "ipaddresspools.metallb.io", "default", "-o", "json"])).stdout,
    );
    assert.deepEqual(got.spec.addresses, pool.spec.addresses);
    assert.equal(got.spec.autoAssign, true, "autoAssign defaults to true, as in MetalLB");
    assert.deepEqual(got.spec.serviceAllocation, pool.spec.serviceAllocation);

    const bad = {
      ...pool,
      metadata: { name: "bad", namespace: "default" },
      spec: { autoAssign: "yes" },
    };
    const res = await cp.kubectl(["apply", "-f", "-"], {
      stdin: JSON.stringify(bad),
      allowFailure: true,
    });
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, /spec\.addresses: Required value/);
  });

  it("routes only Services that matter to the webhooks of deploy/webhooks.yaml", async () => {
    // A recording webhook that allows everything: it shows what the apiserver sends.
    const calls: string[] = [];
    const tls = await generateServingCertificate();
    const server: Server = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => {
        body += d;
      });
      req.on("end", () => {
        const { request } = JSON.parse(body);
        // The apiserver appends ?timeout=5s (timeoutSeconds) to the path.
        const path = new URL(req.url ?? "/", "https://x").pathname;
        calls.push(`${path} ${request.operation} ${request.namespace}/${request.name}`);
        res.setHeader("content-type", "application/json");
        res.end(
          JSON.stringify({
            apiVersion: "admission.k8s.io/v1",
            kind: "AdmissionReview",
            response: { uid: request.uid, allowed: true },
          }),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      await cp.registerWebhook(`https://127.0.0.1:${port}`, tls.caPem);

      // The apiserver loads webhook configurations asynchronously: probe until they are live.
      const deadline = Date.now() + 30_000;
      while (!calls.some((c) => c.includes("default/probe"))) {
        assert.ok(Date.now() < deadline, "the webhooks never became active");
        await cp.kubectl(["apply", "--dry-run=server", "-f", "-"], {
          stdin: service("probe", { type: "LoadBalancer" }),
        });
        await new Promise((resolve) => setTimeout(resolve, 200));
      }

      const seen = async (apply: string, namespace = "default"): Promise<string[]> => {
        calls.length = 0;
        await cp.kubectl(["apply", "-n", namespace, "-f", "-"], { stdin: apply });
        return calls.splice(0);
      };
      const both = (op: string, name: string) => [
        `/mutate ${op} default/${name}`,
        `/validate ${op} default/${name}`,
      ];

      assert.deepEqual(await seen(service("plain")), [], "a plain ClusterIP Service is not sent");
      assert.deepEqual(await seen(service("lb", { type: "LoadBalancer" })), both("CREATE", "lb"));
      assert.deepEqual(
        await seen(service("opt-in", { annotations: { "lb-ip-guard.dev/auto-assign": "true" } })),
        both("CREATE", "opt-in"),
      );
      assert.deepEqual(
        await seen(
          service("legacy-key", {
            annotations: { "metallb.universe.tf/loadBalancerIPs": "192.168.35.101" },
          }),
        ),
        ["/validate CREATE default/legacy-key"],
        "a Service that asks for an address is only validated: the mutation never patches it",
      );
      assert.deepEqual(
        await seen(service("explicit", { type: "LoadBalancer", loadBalancerIP: "192.168.35.102" })),
        ["/validate CREATE default/explicit"],
      );
      // Opted in, with the address an earlier mutation wrote: the mutation turns it into a
      // LoadBalancer again (kubectl apply of its ClusterIP manifest sets the type back).
      assert.deepEqual(
        await seen(
          service("opted-in-with-ip", {
            annotations: { "lb-ip-guard.dev/auto-assign": "true" },
            loadBalancerIP: "192.168.35.103",
          }),
        ),
        both("CREATE", "opted-in-with-ip"),
      );
      // oldObject counts: a Service leaving LoadBalancer is still seen, to free its address.
      assert.deepEqual(await seen(service("lb")), both("UPDATE", "lb"));
      assert.deepEqual(
        await seen(service("lb", { annotations: { note: "changed" } })),
        [],
        "plain on both sides: not sent",
      );
      const system = JSON.parse(service("sys", { type: "LoadBalancer" }));
      system.metadata.namespace = "kube-system";
      assert.deepEqual(
        await seen(JSON.stringify(system), "kube-system"),
        [],
        "kube-system is excluded",
      );
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

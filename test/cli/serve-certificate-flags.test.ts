// The certificate bootstrap's flags of `lb-ip-guard serve`: defaults, durations, environment
// variables, and the refusals (a trust delay that could not fit in a renewal window, a serving
// certificate outliving its CA, names that are no Kubernetes names).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseDuration } from "../../src/cli/serve-flags.ts";
import { serveConfig, serveRefusal } from "./serve-config.ts";

describe("serve: certificate bootstrap flags", () => {
  it("defaults to the shipped names, 90 days, 365 days and a 60 s trust delay", async () => {
    const defaults = await serveConfig([]);
    assert.equal(defaults.serviceName, "lb-ip-guard");
    assert.equal(defaults.tlsSecret, "lb-ip-guard-tls");
    assert.equal(defaults.webhookName, "lb-ip-guard");
    assert.deepEqual(defaults.tlsSans, []);
    assert.equal(defaults.certValidityMs, 90 * 86_400_000);
    assert.equal(defaults.caValidityMs, 365 * 86_400_000);
    assert.equal(defaults.caTrustDelayMs, 60_000);
  });

  it("reads durations with units, combined, or as seconds", () => {
    assert.equal(parseDuration("90d"), 90 * 86_400_000);
    assert.equal(parseDuration("1h30m"), 5_400_000);
    assert.equal(parseDuration("45s"), 45_000);
    assert.equal(parseDuration("1500ms"), 1500);
    assert.equal(parseDuration("2.5"), 2500);
    assert.equal(parseDuration(" 20s "), 20_000);
    for (const bad of ["", "s", "10x", "-5s", "1h 30m", "one"]) {
      assert.equal(parseDuration(bad), undefined, bad);
    }
  });

  it("takes every flag from its variable too, --tls-san comma-separated", async () => {
    const fromEnv = await serveConfig([], {
      LB_IP_GUARD_SERVICE_NAME: "guard",
      LB_IP_GUARD_TLS_SECRET: "guard-certs",
      LB_IP_GUARD_WEBHOOK_NAME: "guard.example.com",
      LB_IP_GUARD_TLS_SAN: "127.0.0.1, localhost,::1",
      LB_IP_GUARD_CERT_VALIDITY: "20s",
      LB_IP_GUARD_CA_VALIDITY: "40s",
      LB_IP_GUARD_CA_TRUST_DELAY: "2s",
    });
    assert.equal(fromEnv.serviceName, "guard");
    assert.equal(fromEnv.tlsSecret, "guard-certs");
    assert.equal(fromEnv.webhookName, "guard.example.com");
    assert.deepEqual(fromEnv.tlsSans, ["127.0.0.1", "localhost", "::1"]);
    assert.equal(fromEnv.certValidityMs, 20_000);
    assert.equal(fromEnv.caValidityMs, 40_000);
    assert.equal(fromEnv.caTrustDelayMs, 2000);
    const flags = await serveConfig(["--tls-san", "a.example", "--tls-san=10.0.0.1"], {
      LB_IP_GUARD_TLS_SAN: "ignored.example",
    });
    assert.deepEqual(flags.tlsSans, ["a.example", "10.0.0.1"]);
  });

  it("refuses what could not work, naming the flag", async () => {
    assert.match(
      await serveRefusal(["--cert-validity", "9s", "--ca-trust-delay", "3s"]),
      /--ca-trust-delay \(3s\) must be under a third of --cert-validity \(9s\)/,
    );
    assert.match(
      await serveRefusal(["--cert-validity", "2h", "--ca-validity", "1h"]),
      /--cert-validity \(7200s\) must not exceed --ca-validity \(3600s\)/,
    );
    assert.match(
      await serveRefusal(["--cert-validity", "1s"]),
      /--cert-validity must be a duration/,
    );
    assert.match(
      await serveRefusal(["--ca-validity", "forever"]),
      /--ca-validity must be a duration/,
    );
    assert.match(
      await serveRefusal([], { LB_IP_GUARD_CA_TRUST_DELAY: "soon" }),
      /LB_IP_GUARD_CA_TRUST_DELAY must be a duration/,
    );
    assert.match(
      await serveRefusal(["--tls-secret", "Bad_Name"]),
      /--tls-secret must be a Secret name/,
    );
    assert.match(
      await serveRefusal(["--service-name", "a.b"]),
      /--service-name must be a Service name/,
    );
    assert.match(
      await serveRefusal(["--tls-san", "not a name"]),
      /--tls-san must be a DNS name or an IP address/,
    );
  });
});

// The rotation plan of the certificate Secret (src/cluster/certificates/plan.ts): when the CA
// and the serving certificate rotate, the trust delay a new CA waits, which CAs the bundle keeps,
// and a simulated clock over several CA lifetimes where no replica ever serves a certificate the
// API server does not trust.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bundleFingerprints, sameBundle, splitPem } from "../../../src/certs/bundle.ts";
import { inspectCertificate, signedBy } from "../../../src/certs/inspect.ts";
import { coversNames, servingNames } from "../../../src/certs/names.ts";
import {
  carryOut,
  planCertificates,
  rotationTime,
} from "../../../src/cluster/certificates/plan.ts";
import { type StoredCertificates, servablePair } from "../../../src/cluster/certificates/secret.ts";
import { bootstrap, info, NAMES, S, SETTINGS, T0 } from "./fixtures.ts";

describe("rotation time", () => {
  it("rotates two thirds through the validity", () => {
    assert.equal(rotationTime({ notBefore: 0, notAfter: 30 * S }), 20 * S);
    assert.equal(
      rotationTime({ notBefore: T0 - 60 * S, notAfter: T0 + 89 * 86_400 * S }) > T0,
      true,
    );
  });
});

describe("the plan", () => {
  it("bootstraps a CA and a certificate it signed, for the wanted names, capped at the CA", async () => {
    const set = await bootstrap();
    const ca = info(set.caCert);
    const cert = info(set.cert);
    assert.ok(ca.isCa);
    assert.ok(!cert.isCa);
    assert.ok(signedBy(cert, ca));
    assert.match(ca.subject, /CN=lb-ip-guard CA 2030-01-01T00:00:00Z/);
    assert.ok(coversNames(cert.names, NAMES));
    assert.deepEqual(bundleFingerprints(set.bundle), [ca.fingerprint]);
    assert.equal(cert.notAfter, T0 + 30 * S);
    assert.equal(ca.notAfter, T0 + 90 * S);
    assert.ok(servablePair(set, T0));
    assert.equal(servablePair(set, T0 + 31 * S), undefined, "expired: not servable");

    const shortCa = { ...SETTINGS, caValidityMs: 20 * S, certValidityMs: 30 * S };
    const capped = await bootstrap(T0, shortCa);
    assert.equal(info(capped.cert).notAfter, info(capped.caCert).notAfter);
  });

  it("writes nothing while all is fresh, and says when to look again", async () => {
    const set = await bootstrap();
    const plan = planCertificates({
      stored: set,
      now: T0 + S,
      settings: SETTINGS,
      trustedSince: T0,
    });
    assert.equal(plan.write, false);
    assert.deepEqual(plan.reasons, []);
    assert.equal(plan.nextCheckAt, rotationTime(info(set.cert)));
  });

  it("renews a serving certificate only once its CA has been trusted for the delay", async () => {
    const set = await bootstrap();
    const due = rotationTime(info(set.cert));
    const untrusted = planCertificates({
      stored: set,
      now: due,
      settings: SETTINGS,
      trustedSince: undefined,
    });
    assert.equal(untrusted.newCert, false);
    assert.equal(untrusted.waitingForTrust, true);
    const recently = planCertificates({
      stored: set,
      now: due,
      settings: SETTINGS,
      trustedSince: due - S,
    });
    assert.equal(recently.newCert, false);
    assert.equal(recently.nextCheckAt, due + 2 * S, "looks again when the delay is over");
    const trusted = planCertificates({
      stored: set,
      now: due,
      settings: SETTINGS,
      trustedSince: due - 3 * S,
    });
    assert.equal(trusted.newCert, true);
    assert.equal(trusted.newCa, false);
    assert.match(trusted.reasons.join(), /two thirds through/);
    const renewed = await carryOut(trusted, set, SETTINGS, due);
    assert.equal(renewed.caCert, set.caCert, "same CA");
    assert.equal(renewed.bundle, set.bundle, "same bundle");
    assert.notEqual(info(renewed.cert).serial, info(set.cert).serial);
    assert.ok(signedBy(info(renewed.cert), info(set.caCert)));
  });

  it("replaces an expired or broken serving certificate at once: nothing to lose", async () => {
    const set = await bootstrap();
    const expired = planCertificates({
      stored: set,
      now: T0 + 31 * S,
      settings: SETTINGS,
      trustedSince: undefined,
    });
    assert.equal(expired.newCert, true);
    assert.match(expired.reasons.join(), /expired/);
    const other = await bootstrap(T0 + 1);
    const mismatched = planCertificates({
      stored: { ...set, key: other.key },
      now: T0 + S,
      settings: SETTINGS,
      trustedSince: undefined,
    });
    assert.equal(mismatched.newCert, true);
    assert.match(mismatched.reasons.join(), /tls\.key does not match/);
    const foreign = planCertificates({
      stored: { ...set, cert: other.cert, key: other.key },
      now: T0 + S,
      settings: SETTINGS,
      trustedSince: undefined,
    });
    assert.match(foreign.reasons.join(), /no CA of the bundle signed/);
    assert.equal(foreign.newCert, true);
  });

  it("adds a missing name (after the trust delay), keeping the names already there", async () => {
    const set = await bootstrap();
    const more = { ...SETTINGS, names: servingNames("lb-ip-guard", "lb-ip-guard", ["::1"]) };
    const plan = planCertificates({
      stored: set,
      now: T0 + S,
      settings: more,
      trustedSince: T0 - 5 * S,
    });
    assert.equal(plan.newCert, true);
    assert.match(plan.reasons.join(), /lacks a wanted name/);
    const renewed = await carryOut(plan, set, more, T0 + S);
    const names = info(renewed.cert).names;
    assert.ok(names.ips.includes("::1") && names.ips.includes("127.0.0.1"));
  });

  it("rotates the CA two thirds through: the new CA joins the bundle first, signs only once trusted, and the old one leaves when it expires", async () => {
    const first0 = await bootstrap();
    const oldCa = info(first0.caCert);
    const due = rotationTime(oldCa);
    // A serving certificate renewed just before: it is not due when the CA is.
    const renew = planCertificates({
      stored: first0,
      now: due - S,
      settings: SETTINGS,
      trustedSince: T0,
    });
    assert.ok(renew.newCert && !renew.newCa);
    const set = await carryOut(renew, first0, SETTINGS, due - S);

    // 1. New CA: it signs from now on and joins the bundle; the serving certificate stays.
    const first = planCertificates({ stored: set, now: due, settings: SETTINGS, trustedSince: T0 });
    assert.equal(first.newCa, true);
    assert.equal(first.newCert, false, "the certificate in use does not switch yet");
    const staged = await carryOut(first, set, SETTINGS, due);
    const newCa = info(staged.caCert);
    assert.notEqual(newCa.fingerprint, oldCa.fingerprint);
    assert.deepEqual(
      bundleFingerprints(staged.bundle),
      [oldCa.fingerprint, newCa.fingerprint].sort(),
    );
    assert.equal(staged.cert, set.cert);

    // 2. Not trusted long enough: wait. Then a certificate from the new CA.
    const waiting = planCertificates({
      stored: staged,
      now: due + S,
      settings: SETTINGS,
      trustedSince: due,
    });
    assert.equal(waiting.write, false);
    assert.equal(waiting.waitingForTrust, true);
    assert.equal(waiting.nextCheckAt, due + 3 * S);
    const switching = planCertificates({
      stored: staged,
      now: due + 3 * S,
      settings: SETTINGS,
      trustedSince: due,
    });
    assert.equal(switching.newCert, true);
    assert.match(switching.reasons.join(), /signing CA did not sign it/);
    const switched = await carryOut(switching, staged, SETTINGS, due + 3 * S);
    assert.ok(signedBy(info(switched.cert), newCa));
    assert.ok(sameBundle(switched.bundle, staged.bundle), "the old CA stays while it is valid");

    // 3. The old CA expires: it leaves the bundle (the serving certificate, due by then too,
    //    is renewed by the new CA in the same write).
    const afterExpiry = oldCa.notAfter;
    const pruning = planCertificates({
      stored: switched,
      now: afterExpiry,
      settings: SETTINGS,
      trustedSince: due,
    });
    assert.equal(pruning.write, true);
    assert.equal(pruning.newCa, false);
    assert.match(pruning.reasons.join(), /leaves the bundle/);
    const pruned = await carryOut(pruning, switched, SETTINGS, afterExpiry);
    assert.deepEqual(bundleFingerprints(pruned.bundle), [newCa.fingerprint]);
    assert.ok(signedBy(info(pruned.cert), newCa));
    assert.ok(
      planCertificates({
        stored: switched,
        now: afterExpiry - 1,
        settings: SETTINGS,
        trustedSince: due,
      }).nextCheckAt <= afterExpiry,
      "the pruning time is a check time",
    );
  });

  it("starts over after a long outage: everything expired is replaced in one write", async () => {
    const set = await bootstrap();
    const later = T0 + 1000 * S;
    const plan = planCertificates({
      stored: set,
      now: later,
      settings: SETTINGS,
      trustedSince: undefined,
    });
    assert.ok(plan.newCa && plan.newCert);
    const fresh = await carryOut(plan, set, SETTINGS, later);
    assert.equal(bundleFingerprints(fresh.bundle).length, 1, "the expired CA is gone");
    assert.ok(servablePair(fresh, later));
  });

  it("replaces a CA whose key is missing or does not match", async () => {
    const set = await bootstrap();
    for (const caKey of [undefined, (await bootstrap(T0 + 1)).caKey]) {
      const plan = planCertificates({
        stored: { ...set, caKey },
        now: T0 + S,
        settings: SETTINGS,
        trustedSince: T0,
      });
      assert.equal(plan.newCa, true);
      assert.equal(plan.newCert, false, "the certificate in use is still good");
    }
  });
});

describe("a simulated clock over several CA lifetimes", () => {
  it("no replica ever serves a certificate the API server does not trust", async () => {
    // Two replicas reconcile at their own pace (every 1 s and every 2 s) against one Secret;
    // the API server acts on the caBundle as it was `lag` ago (its watch of the configurations),
    // lag < trust delay. At each step every replica's served certificate must be in its
    // validity and signed by a CA the API server trusts at that moment.
    const step = S;
    const lag = 2 * S;
    const end = T0 + 2.5 * SETTINGS.caValidityMs;
    const parsed = new Map<string, ReturnType<typeof info>>();
    const cached = (pem: string | undefined) => {
      const key = pem ?? "";
      const hit = parsed.get(key) ?? info(pem);
      parsed.set(key, hit);
      return hit;
    };
    let secret: StoredCertificates | undefined;
    let caBundle = ""; // what the webhook configurations hold
    const history: { at: number; bundle: string }[] = [];
    const replicas = [
      {
        every: 1,
        served: undefined as string | undefined,
        trust: undefined as undefined | { ca: string; since: number },
      },
      {
        every: 3,
        served: undefined as string | undefined,
        trust: undefined as undefined | { ca: string; since: number },
      },
    ];
    const observe = (replica: (typeof replicas)[number], now: number) => {
      const ca = secret?.caCert;
      const fingerprint = inspectCertificate(ca)?.fingerprint;
      if (fingerprint === undefined || !bundleFingerprints(caBundle).includes(fingerprint)) {
        replica.trust = undefined;
        return undefined;
      }
      if (replica.trust?.ca !== fingerprint) replica.trust = { ca: fingerprint, since: now };
      return replica.trust.since;
    };
    const counts = { writes: 0, newCa: 0, newCert: 0, checks: 0 };
    for (let now = T0, tick = 0; now <= end; now += step, tick += 1) {
      for (const replica of replicas) {
        if (tick % replica.every !== 0) continue;
        const plan = planCertificates({
          stored: secret,
          now,
          settings: SETTINGS,
          trustedSince: observe(replica, now),
        });
        if (plan.write) {
          secret = await carryOut(plan, secret, SETTINGS, now);
          counts.writes += 1;
          if (plan.newCa) counts.newCa += 1;
          if (plan.newCert) counts.newCert += 1;
        }
        if (secret?.bundle !== undefined && !sameBundle(caBundle, secret.bundle)) {
          caBundle = secret.bundle;
          history.push({ at: now, bundle: caBundle });
        }
        observe(replica, now);
        const pair = secret === undefined ? undefined : servablePair(secret, now);
        if (pair !== undefined) replica.served = pair.cert;
      }
      // What the API server trusts now: the caBundle as it was `lag` ago.
      const seen = history.filter((entry) => entry.at <= now - lag).at(-1)?.bundle;
      if (seen === undefined) continue; // bootstrap: nothing is trusted yet, nothing can be
      const trusted = splitPem(seen).map(cached);
      for (const [index, replica] of replicas.entries()) {
        const cert = cached(replica.served);
        counts.checks += 1;
        assert.ok(
          now >= cert.notBefore && now < cert.notAfter,
          `replica ${index} serves an expired certificate at +${(now - T0) / S}s`,
        );
        assert.ok(
          trusted.some((ca) => signedBy(cert, ca)),
          `replica ${index} serves a certificate of an untrusted CA at +${(now - T0) / S}s`,
        );
      }
    }
    assert.ok(counts.newCa >= 2, `CA rotations: ${counts.newCa}`);
    assert.ok(counts.newCert >= 7, `serving certificates: ${counts.newCert}`);
    assert.ok(Math.max(...history.map((entry) => splitPem(entry.bundle).length)) <= 2);
  });
});

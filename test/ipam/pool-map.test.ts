import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { formatAddress, isBuggyIPv4 } from "../../src/ipam/address.ts";
import { policyFor } from "../../src/ipam/decide.ts";
import { PoolSet } from "../../src/ipam/pool.ts";
import {
  type ClaimRecord,
  describeAllocation,
  describeProblem,
  type MappedService,
  mappedServiceOf,
  poolMap,
} from "../../src/ipam/pool-map.ts";
import { formatRange } from "../../src/ipam/range.ts";
import type { Reservation } from "../../src/ipam/reservations.ts";
import { RetainedAddresses } from "../../src/ipam/retained.ts";
import type { Holder } from "../../src/ipam/usage.ts";
import { address, allocation, pool } from "./fixtures.ts";

function holder(ref: string, sharingKey = "", ports = ["TCP/80"]): Holder {
  return { ref, sharingKey, ports, backendKey: "Cluster" };
}

function service(
  ref: string,
  addresses: { served?: string[]; requested?: string[]; externalIPs?: string[] },
  sharing: { key?: string; ports?: string[] } = {},
): MappedService {
  return {
    holder: holder(ref, sharing.key, sharing.ports),
    served: (addresses.served ?? []).map(address),
    requested: (addresses.requested ?? []).map(address),
    externalIPs: (addresses.externalIPs ?? []).map(address),
  };
}

const lan = pool("lan", ["192.0.2.0/28"]);

function reservation(ref: string, addresses: string[], serviceName?: string): Reservation {
  const [namespace = "", name = ""] = ref.split("/");
  return { namespace, name, addresses: addresses.map(address), serviceName };
}

/** What the lifecycle keeps: `retained` as [address, for whom], reservations, quotas. */
function kept(
  retained: [string, string][],
  reservations: Reservation[] = [],
  quotas: Record<string, number> = {},
) {
  const index = new RetainedAddresses();
  for (const [text, ref] of retained)
    index.retain(address(text), { ref, since: 1000, until: 2000 });
  return { retained: index, reservations, quotas: new Map(Object.entries(quotas)) };
}

/** The held addresses of the first pool as `address state holder/via,...` lines. */
function heldLines(map: ReturnType<typeof poolMap>, index = 0): string[] {
  return (map.pools[index]?.held ?? []).map(
    (entry) =>
      `${formatAddress(entry.address)} ${entry.state} ${entry.holders.map((h) => `${h.ref}/${h.via}`).join(",")}`,
  );
}

describe("poolMap", () => {
  it("an empty pool: everything free, one free range per range", () => {
    const map = poolMap(new PoolSet([pool("two", ["192.0.2.0/30", "198.51.100.8/31"])]), [], []);
    const [mapped] = map.pools;
    assert.equal(mapped?.size, 6n);
    assert.equal(mapped?.usable, 6n);
    assert.equal(mapped?.used, 0);
    assert.equal(mapped?.free, 6n);
    assert.equal(mapped?.shareUsed, 0);
    assert.deepEqual(mapped?.freeRanges.map(formatRange), [
      "192.0.2.0-192.0.2.3",
      "198.51.100.8-198.51.100.9",
    ]);
    assert.deepEqual(map.problems, []);
  });

  it("one holder splits the free range around its address", () => {
    const map = poolMap(new PoolSet([lan]), [service("a/web", { requested: ["192.0.2.5"] })], []);
    assert.deepEqual(heldLines(map), ["192.0.2.5 held a/web/request"]);
    assert.deepEqual(map.pools[0]?.freeRanges.map(formatRange), [
      "192.0.2.0-192.0.2.4",
      "192.0.2.6-192.0.2.15",
    ]);
    assert.equal(map.pools[0]?.used, 1);
    assert.equal(map.pools[0]?.free, 15n);
    assert.equal(map.pools[0]?.shareUsed, 0.0625);
  });

  it("a Service served the address it requests holds it once, by its status", () => {
    const web = service("a/web", { served: ["192.0.2.5"], requested: ["192.0.2.5"] });
    assert.deepEqual(heldLines(poolMap(new PoolSet([lan]), [web], [])), [
      "192.0.2.5 held a/web/status",
    ]);
  });

  it("two Services with one sharing key and distinct ports share; the state says so", () => {
    const tcp = service(
      "a/dns-tcp",
      { requested: ["192.0.2.5"] },
      { key: "dns", ports: ["TCP/53"] },
    );
    const udp = service(
      "a/dns-udp",
      { requested: ["192.0.2.5"] },
      { key: "dns", ports: ["UDP/53"] },
    );
    const map = poolMap(new PoolSet([lan]), [tcp, udp], []);
    assert.deepEqual(heldLines(map), ["192.0.2.5 shared a/dns-tcp/request,a/dns-udp/request"]);
    assert.equal(map.pools[0]?.used, 1);
    assert.deepEqual(map.problems, []);
  });

  it("one sharing key but a port in common: conflicting, the later one is the problem", () => {
    const first = service("a/one", { requested: ["192.0.2.5"] }, { key: "k", ports: ["TCP/80"] });
    const second = service("a/two", { requested: ["192.0.2.5"] }, { key: "k", ports: ["TCP/80"] });
    const map = poolMap(new PoolSet([lan]), [first, second], []);
    assert.deepEqual(heldLines(map), ["192.0.2.5 conflicting a/one/request,a/two/request"]);
    assert.deepEqual(map.problems.map(describeProblem), [
      "a/two requests 192.0.2.5, which a/one holds and does not share with it: it stays <pending>",
    ]);
  });

  it("the Service MetalLB serves keeps the address, whoever comes first in the input", () => {
    const asker = service("a/asker", { requested: ["192.0.2.7"] });
    const served = service("b/served", { served: ["192.0.2.7"] });
    const map = poolMap(new PoolSet([lan]), [asker, served], []);
    assert.deepEqual(heldLines(map), ["192.0.2.7 conflicting b/served/status,a/asker/request"]);
    const [problem] = map.problems;
    assert.equal(problem?.kind, "address-taken");
    assert.equal(problem?.kind === "address-taken" && problem.ref, "a/asker");
    assert.equal(problem?.kind === "address-taken" && problem.heldBy, "b/served");
  });

  it("an address served to a Service that now asks for another: requested elsewhere", () => {
    const moved = service("a/moved", { served: ["192.0.2.3"], requested: ["192.0.2.9"] });
    assert.deepEqual(heldLines(poolMap(new PoolSet([lan]), [moved], [])), [
      "192.0.2.3 requested-elsewhere a/moved/status",
      "192.0.2.9 held a/moved/request",
    ]);
  });

  it("an externalIP is shared with no one, sharing key or not", () => {
    const lb = service("a/lb", { requested: ["192.0.2.4"] }, { key: "k", ports: ["TCP/80"] });
    const external = service(
      "b/ext",
      { externalIPs: ["192.0.2.4"] },
      { key: "k", ports: ["TCP/81"] },
    );
    const map = poolMap(new PoolSet([lan]), [lb, external], []);
    assert.deepEqual(heldLines(map), ["192.0.2.4 conflicting a/lb/request,b/ext/externalIP"]);
    assert.match(
      describeProblem(map.problems[0] as never),
      /b\/ext lists 192\.0\.2\.4 in spec\.externalIPs/,
    );
  });

  it("an address outside every pool is listed apart, and is a problem", () => {
    const stray = service("a/stray", { served: ["203.0.113.9"] });
    const map = poolMap(new PoolSet([lan]), [stray], []);
    assert.deepEqual(heldLines(map), []);
    assert.deepEqual(
      map.outside.map((entry) => formatAddress(entry.address)),
      ["203.0.113.9"],
    );
    assert.deepEqual(map.problems.map(describeProblem), [
      "203.0.113.9 is held outside every pool by a/stray",
    ]);
  });

  it("an externalIP outside every pool is listed there, and is no problem", () => {
    const ext = service("a/ext", { externalIPs: ["203.0.113.9"] });
    const map = poolMap(new PoolSet([lan]), [ext], []);
    assert.deepEqual(
      map.outside.map((entry) => formatAddress(entry.address)),
      ["203.0.113.9"],
    );
    assert.deepEqual(map.problems, []);
  });

  it("claims: settled ones vanish, pending ones hold, one without a Service is a problem", () => {
    const web = service("a/web", { requested: ["192.0.2.5"] });
    const api = service("a/api", {});
    const claims: ClaimRecord[] = [
      { address: address("192.0.2.5"), holder: holder("a/web") },
      { address: address("192.0.2.6"), holder: holder("a/api") },
      { address: address("192.0.2.8"), holder: holder("a/gone") },
    ];
    const map = poolMap(new PoolSet([lan]), [web, api], claims);
    assert.deepEqual(heldLines(map), [
      "192.0.2.5 held a/web/request",
      "192.0.2.6 held a/api/claim",
      "192.0.2.8 held a/gone/claim",
    ]);
    assert.deepEqual(map.problems.map(describeProblem), [
      "192.0.2.8 is claimed for a/gone, which does not exist (a refused or deleted Service; the claim expires)",
    ]);
  });

  it("a pending claim on an address a Service holds is a conflict, the Service keeps it", () => {
    const web = service("a/web", { served: ["192.0.2.5"] });
    const api = service("a/api", {});
    const map = poolMap(
      new PoolSet([lan]),
      [web, api],
      [{ address: address("192.0.2.5"), holder: holder("a/api") }],
    );
    assert.deepEqual(heldLines(map), ["192.0.2.5 conflicting a/web/status,a/api/claim"]);
    assert.match(
      describeProblem(map.problems[0] as never),
      /a\/api has a pending claim on 192\.0\.2\.5, which a\/web holds/,
    );
  });

  it("avoidBuggyIPs: .0 and .255 are not usable and no free range starts or ends on them", () => {
    const avoiding = pool("avoid", ["192.0.2.0/24", "198.51.100.255-198.51.101.0"], {
      avoidBuggyIPs: true,
    });
    const map = poolMap(
      new PoolSet([avoiding]),
      [service("a/web", { requested: ["192.0.2.1"] })],
      [],
    );
    const [mapped] = map.pools;
    assert.equal(mapped?.size, 258n);
    assert.equal(mapped?.usable, 254n);
    assert.equal(mapped?.free, 253n);
    assert.deepEqual(mapped?.freeRanges.map(formatRange), ["192.0.2.2-192.0.2.254"]);
  });

  it("an IPv6 /64 with thousands of holders costs what they cost, not what the pool holds", () => {
    const big = pool("v6", ["2001:db8::/64"]);
    const services = Array.from({ length: 5000 }, (_, i) =>
      service(`a/s${i}`, { requested: [`2001:db8::${(i * 7 + 1).toString(16)}`] }),
    );
    const started = performance.now();
    const map = poolMap(new PoolSet([big]), services, []);
    const elapsed = performance.now() - started;
    const [mapped] = map.pools;
    assert.equal(mapped?.size, 1n << 64n);
    assert.equal(mapped?.used, 5000);
    assert.equal(mapped?.free, (1n << 64n) - 5000n);
    // Runs: before the first, one between each pair 7 apart, after the last (0x88b2 = 4999 * 7 + 1).
    assert.equal(mapped?.freeRanges.length, 5001);
    assert.equal(
      formatRange(mapped?.freeRanges.at(-1) as never),
      "2001:db8::88b3-2001:db8::ffff:ffff:ffff:ffff",
    );
    assert.ok(elapsed < 1000, `${elapsed} ms`);
  });

  it("a dual-stack pool counts both families", () => {
    const dual = pool("dual", ["192.0.2.0/30", "2001:db8::/126"]);
    const map = poolMap(
      new PoolSet([dual]),
      [service("a/web", { requested: ["192.0.2.1", "2001:db8::2"] })],
      [],
    );
    assert.equal(map.pools[0]?.size, 8n);
    assert.equal(map.pools[0]?.used, 2);
    assert.deepEqual(heldLines(map), [
      "192.0.2.1 held a/web/request",
      "2001:db8::2 held a/web/request",
    ]);
  });

  it("retained and reserved addresses nobody holds are kept, not free; held ones are held", () => {
    const map = poolMap(
      new PoolSet([lan]),
      [service("a/db", { requested: ["192.0.2.3"] })],
      [],
      kept(
        [
          ["192.0.2.1", "a/web"],
          ["192.0.2.2", "a/api"],
          ["192.0.2.9", "a/gone"],
        ],
        [reservation("a/db", ["192.0.2.3"], "db"), reservation("a/any", ["192.0.2.2"])],
      ),
    );
    const [mapped] = map.pools;
    assert.deepEqual(
      mapped?.kept.map((entry) => `${formatAddress(entry.address)} ${entry.state}`),
      // .2 is retained and reserved: the reservation is what keeps it.
      ["192.0.2.1 retained", "192.0.2.2 reserved", "192.0.2.9 retained"],
    );
    assert.deepEqual(heldLines(map), ["192.0.2.3 held a/db/request"]);
    assert.deepEqual(
      mapped?.reserved.map((entry) => [formatAddress(entry.address), entry.heldBy]),
      [
        ["192.0.2.2", []],
        ["192.0.2.3", ["a/db"]],
      ],
    );
    assert.equal(mapped?.used, 1);
    assert.equal(mapped?.free, 12n);
    assert.deepEqual(mapped?.freeRanges.map(formatRange), [
      "192.0.2.0",
      "192.0.2.4-192.0.2.8",
      "192.0.2.10-192.0.2.15",
    ]);
    assert.deepEqual(map.problems, []);
  });

  it("a reserved address held by a Service it is not for is a problem naming both", () => {
    const map = poolMap(
      new PoolSet([lan]),
      [
        service("a/other", { served: ["192.0.2.4"] }),
        service("b/web", { requested: ["192.0.2.5"] }),
      ],
      [],
      kept([], [reservation("a/db", ["192.0.2.4"], "db"), reservation("a/any", ["192.0.2.5"])]),
    );
    assert.deepEqual(
      map.problems.map((problem) => [problem.kind, formatAddress(problem.address)]),
      [
        ["reserved-held-elsewhere", "192.0.2.4"],
        ["reserved-held-elsewhere", "192.0.2.5"],
      ],
    );
    assert.equal(
      describeProblem(map.problems[0] as (typeof map.problems)[number]),
      "192.0.2.4 is reserved by AddressReservation a/db for a/db, but a/other holds it (it is never moved: free it, or change the reservation)",
    );
    assert.match(
      describeProblem(map.problems[1] as (typeof map.problems)[number]),
      /for namespace a, but b\/web holds it/,
    );
  });

  it("a namespace's use against its quota: distinct pool addresses held or reserved, shared ones once", () => {
    const map = poolMap(
      new PoolSet([lan]),
      [
        service("q/a", { requested: ["192.0.2.1"] }, { key: "k", ports: ["TCP/80"] }),
        service("q/b", { requested: ["192.0.2.1"] }, { key: "k", ports: ["TCP/81"] }),
        service("q/c", { served: ["192.0.2.2"] }),
        // Outside every pool: no quota counts it.
        service("q/d", { requested: ["198.51.100.1"] }),
        service("other/x", { requested: ["192.0.2.3"] }),
      ],
      [],
      kept([["192.0.2.8", "q/gone"]], [reservation("q/r", ["192.0.2.7"])], { q: 2, empty: 1 }),
    );
    assert.deepEqual(
      map.namespaces.map((entry) => [
        entry.namespace,
        entry.quota,
        entry.addresses.map(formatAddress),
      ]),
      [
        ["empty", 1, []],
        ["q", 2, ["192.0.2.1", "192.0.2.2", "192.0.2.7"]],
      ],
    );
  });

  it("every address of a small pool is held, kept, free or avoided, exactly once (property)", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(60), fc.nat(12)), { minLength: 1, maxLength: 3 }),
        fc.boolean(),
        fc.array(fc.tuple(fc.nat(5), fc.nat(330), fc.constantFrom("status", "request")), {
          maxLength: 20,
        }),
        fc.array(fc.tuple(fc.nat(330), fc.constantFrom("retained", "reserved")), { maxLength: 8 }),
        (spans, avoidBuggyIPs, holdings, keeps) => {
          // Non-overlapping ranges around 192.0.2.255 so that .255 and .0 occur: span i at 100 * i.
          const base = 0xc00002c0;
          const ranges = spans.map(([start, length], i) => ({
            family: "IPv4" as const,
            first: BigInt(base + 100 * i + start),
            last: BigInt(base + 100 * i + start + length),
          }));
          const tested = pool("p", ranges, { avoidBuggyIPs });
          const services = holdings.map(([who, offset, via]) => {
            const address = formatAddress({ family: "IPv4", value: BigInt(base + offset) });
            return service(
              `ns/s${who}`,
              via === "status" ? { served: [address] } : { requested: [address] },
            );
          });
          const text = (offset: number) =>
            formatAddress({ family: "IPv4", value: BigInt(base + offset) });
          const lifecycle = kept(
            keeps.filter(([, how]) => how === "retained").map(([offset]) => [text(offset), "ns/x"]),
            keeps
              .filter(([, how]) => how === "reserved")
              .map(([offset], i) => reservation(`ns/r${i}`, [text(offset)])),
          );
          const map = poolMap(new PoolSet([tested]), services, [], lifecycle);
          const [mapped] = map.pools;
          assert.ok(mapped !== undefined);
          const held = new Set(mapped.held.map((entry) => entry.address.value));
          const keptValues = new Set(mapped.kept.map((entry) => entry.address.value));
          assert.equal(keptValues.size, mapped.kept.length, "an address kept twice");
          const inRanges = (value: bigint) =>
            ranges.some((range) => range.first <= value && value <= range.last);
          // Kept: exactly the retained or reserved addresses of the pool that nobody holds.
          assert.deepEqual(
            [...keptValues].sort(),
            [...new Set(keeps.map(([offset]) => BigInt(base + offset)))]
              .filter((value) => inRanges(value) && !held.has(value))
              .sort(),
          );
          const free = new Set<bigint>();
          for (const run of mapped.freeRanges) {
            for (let value = run.first; value <= run.last; value++) {
              assert.ok(!held.has(value), `free and held: ${value}`);
              assert.ok(!keptValues.has(value), `free and kept: ${value}`);
              free.add(value);
            }
          }
          let usable = 0n;
          let heldUsable = 0n;
          for (const range of ranges) {
            for (let value = range.first; value <= range.last; value++) {
              const avoided = avoidBuggyIPs && isBuggyIPv4(value);
              if (!avoided) usable++;
              if (held.has(value) || keptValues.has(value)) {
                if (!avoided) heldUsable++;
                continue;
              }
              // A free address is in a free run, unless it is an avoided one at a run's end.
              if (!avoided)
                assert.ok(free.has(value), `usable, not held, not in a free run: ${value}`);
            }
          }
          assert.equal(mapped.usable, usable);
          assert.equal(mapped.free, usable - heldUsable);
          assert.equal(mapped.used, held.size);
          // The held ones in the pool plus the ones outside are every address someone holds.
          const all = new Set(
            services.flatMap((s) => [...s.served, ...s.requested].map((a) => a.value)),
          );
          assert.equal(held.size + map.outside.length, all.size);
        },
      ),
    );
  });
});

describe("mappedServiceOf", () => {
  const policy = policyFor();
  it("a LoadBalancer: what it requests and what MetalLB serves it, apart", () => {
    const mapped = mappedServiceOf(
      {
        metadata: {
          name: "web",
          namespace: "a",
          annotations: { "metallb.io/allow-shared-ip": "k" },
        },
        spec: { type: "LoadBalancer", loadBalancerIP: "192.0.2.9", ports: [{ port: 443 }] },
        status: { loadBalancer: { ingress: [{ ip: "192.0.2.3" }] } },
      },
      policy,
      "a/web",
    );
    assert.deepEqual(mapped.requested.map(formatAddress), ["192.0.2.9"]);
    assert.deepEqual(mapped.served.map(formatAddress), ["192.0.2.3"]);
    assert.deepEqual(mapped.holder, {
      ref: "a/web",
      sharingKey: "k",
      ports: ["TCP/443"],
      backendKey: "Cluster",
    });
  });

  it("a ClusterIP Service holds only its externalIPs; unparseable addresses hold nothing", () => {
    const mapped = mappedServiceOf(
      {
        metadata: { name: "x" },
        spec: {
          type: "ClusterIP",
          loadBalancerIP: "192.0.2.9",
          externalIPs: ["192.0.2.4", "nope"],
        },
      },
      policy,
      "default/x",
    );
    assert.deepEqual(mapped.requested, []);
    assert.deepEqual(mapped.served, []);
    assert.deepEqual(mapped.externalIPs.map(formatAddress), ["192.0.2.4"]);
  });
});

describe("describeAllocation", () => {
  it("says every rule on one line", () => {
    assert.equal(describeAllocation(undefined), "any Service");
    assert.equal(
      describeAllocation(
        allocation({
          priority: 10,
          namespaces: ["a", "b"],
          namespaceSelectors: [{ matchLabels: { team: "x" }, matchExpressions: [] }],
          serviceSelectors: [
            {
              matchLabels: {},
              matchExpressions: [{ key: "tier", operator: "In", values: ["web", "api"] }],
            },
            {
              matchLabels: {},
              matchExpressions: [{ key: "legacy", operator: "DoesNotExist", values: [] }],
            },
          ],
        }),
      ),
      "priority 10, namespaces [a, b], namespaces {team=x}, services {tier in (web,api)} or {!legacy}",
    );
  });
});

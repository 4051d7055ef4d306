// What the fuzz suite (./fuzz.test.ts) posts: AdmissionReviews from a grammar of Services with
// realistic and hostile fields, the same reviews mutated at random JSON paths, and their bytes
// mutated (cut short, invalid UTF-8, numbers no JSON reader keeps). Names, namespaces and
// addresses come from small sets around the example pools, so that reviews meet each other:
// the same Service updated, an address taken, shared, or outside every pool.

import fc from "fast-check";
import { ALL_KEYS } from "../../src/ipam/metallb-version.ts";
import { ANNOTATION } from "../../src/ipam/service.ts";

/** One request of the fuzz run. */
export interface FuzzCase {
  readonly webhook: "validate" | "mutate";
  /** How the body came about, for the counts and a failure's report. */
  readonly origin: "grammar" | "mutated" | "bytes";
  readonly contentType: string;
  readonly body: Buffer;
}

/** The content types the server reads as JSON; any other is refused (415) unread. */
export const JSON_CONTENT_TYPES = ["application/json", "application/json; charset=utf-8"];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const weighted = <T>(often: fc.Arbitrary<T>, rarely: fc.Arbitrary<T>, odds = 8) =>
  fc.oneof({ arbitrary: often, weight: odds }, { arbitrary: rarely, weight: 1 });

// ---- values an attacker or a broken client may put anywhere ----

const HUGE_LENGTHS = [1_000, 70_000, 300_000];

/** Strings nobody should send: empty, control characters, unicode, huge. */
const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.string(),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.constantFrom(
    "",
    " ",
    "\n",
    "line\nbreak",
    "\u0000",
    "\u202eevil",
    "line\u2028separator",
    "💥",
    "\ud800",
    "__proto__",
    "constructor",
    "true",
    "null",
  ),
  fc
    .tuple(fc.constantFrom(...HUGE_LENGTHS), fc.constantFrom("a", "é", "9", ",", "1.1.1.1,"))
    .map(([length, unit]) => unit.repeat(Math.ceil(length / unit.length))),
);

/** A value nested `depth` levels deep, built without recursion. */
function nested(depth: number, inArray: boolean): Json {
  let value: Json = "bottom";
  for (let level = 0; level < depth; level++) value = inArray ? [value] : { a: value };
  return value;
}

/** Any JSON value, of any type where another is expected: the wrong-type and junk generator. */
const junk: fc.Arbitrary<Json> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(Number.MAX_SAFE_INTEGER + 2, -0, 1e308, 5e-324),
  hostileString,
  fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>,
  fc
    .tuple(fc.constantFrom(50, 1_000, 2_000), fc.boolean())
    .map(([depth, inArray]) => nested(depth, inArray)),
);

/** An object with each field present with its chance in percent, so absent ones are absent. */
function fields(model: Record<string, readonly [fc.Arbitrary<Json>, percent: number]>) {
  const entries = Object.entries(model).map(([key, [value, percent]]) => [
    key,
    percent >= 100
      ? value
      : fc.oneof(
          { arbitrary: fc.constant(undefined), weight: 100 - percent },
          { arbitrary: value, weight: percent },
        ),
  ]);
  return fc
    .record(Object.fromEntries(entries) as Record<string, fc.Arbitrary<Json | undefined>>)
    .map(
      (record) =>
        Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined)) as {
          [key: string]: Json;
        },
    );
}

/** A realistic value most of the time, anything else now and then. */
const orJunk = <T extends Json>(often: fc.Arbitrary<T>) => weighted<Json>(often, junk, 50);

// ---- addresses ----

const octet = (from: number, to: number) => fc.integer({ min: from, max: to });

/** Addresses inside the example pools (tight, so reviews ask for the same ones). */
const poolAddress = fc.oneof(
  octet(10, 22).map((n) => `192.168.41.${n}`),
  octet(0, 15).map((n) => `192.168.40.${n}`),
  octet(100, 112).map((n) => `192.168.35.${n}`),
  octet(0x0e, 0x1a).map((n) => `2001:db8:40::${n.toString(16)}`),
);

const outsideAddress = fc.oneof(
  fc.ipV4(),
  fc.ipV6(),
  fc.constantFrom("10.0.0.1", "0.0.0.0", "255.255.255.255", "::", "::1", "2001:db8:41::1"),
);

/** Other spellings of an address: some MetalLB reads, some it refuses, some mean another one. */
const spelled = (address: string) =>
  fc
    .constantFrom<(text: string) => string>(
      (text) => text,
      (text) => text.toUpperCase(),
      (text) => text.replace(/(^|\.)(\d)(?=\.|$)/g, "$10$2"),
      (text) => `::ffff:${text}`,
      (text) => ` ${text} `,
      (text) => `${text}%eth0`,
      (text) => `${text}/32`,
      (text) => text.replace("::", ":0:0:"),
      (text) => `${text}.`,
    )
    .map((spell) => spell(address));

const address = weighted(poolAddress, outsideAddress, 3).chain((text) =>
  weighted(fc.constant(text), spelled(text), 4),
);

/** What goes in an address annotation: one to four addresses, odd separators. */
const addressList = fc
  .tuple(fc.array(address, { minLength: 1, maxLength: 4 }), fc.constantFrom(",", ", ", " , ", ",,"))
  .map(([addresses, separator]) => addresses.join(separator));

// ---- Services ----

const NAMESPACES = ["default", "payments", "team-a", "kube-system"];
const NAMES = ["web", "api", "db", "cache", "ml-pipeline-ui"];
const POOLS = ["general", "team-payments", "ipv6", "default", "no-such-pool", ""];

const namespace = weighted(fc.constantFrom(...NAMESPACES), hostileString, 12);
const name = weighted(fc.constantFrom(...NAMES), hostileString, 12);

/** Every annotation key a decision reads with values it may meet, and others. */
const annotation = fc.oneof(
  { arbitrary: fc.tuple(fc.constantFrom(...ALL_KEYS.loadBalancerIPs), addressList), weight: 4 },
  {
    arbitrary: fc.tuple(fc.constantFrom(...ALL_KEYS.addressPool), fc.constantFrom(...POOLS)),
    weight: 2,
  },
  {
    arbitrary: fc.tuple(
      fc.constantFrom(...ALL_KEYS.allowSharedIP),
      fc.constantFrom("shared", "key-1", ""),
    ),
    weight: 2,
  },
  {
    arbitrary: fc.tuple(
      fc.constant(ANNOTATION.autoAssign),
      fc.constantFrom("true", "true", "false", ""),
    ),
    weight: 4,
  },
  {
    arbitrary: fc.tuple(fc.constant(ANNOTATION.assignedFrom), fc.constantFrom(...POOLS)),
    weight: 1,
  },
  { arbitrary: fc.tuple(hostileString, hostileString), weight: 1 },
);

const annotations = fc
  .array(fc.tuple(annotation, fc.boolean()), { maxLength: 3 })
  .chain((entries) =>
    fc.tuple(
      ...entries.map(([[key, value]]) => fc.tuple(fc.constant(key), orJunk(fc.constant(value)))),
    ),
  )
  .map((entries) => Object.fromEntries(entries) as Json);
const labels = fc.dictionary(
  fc.constantFrom("app", "tier", "kubernetes.io/metadata.name"),
  orJunk(fc.constantFrom("web", "production", "payments")),
  { maxKeys: 3 },
);

const port = fields({
  name: [orJunk(fc.constantFrom("http", "https", "dns")), 50],
  protocol: [orJunk(fc.constantFrom("TCP", "UDP", "SCTP", "tcp")), 70],
  port: [orJunk(fc.constantFrom(53, 80, 443, 0, 65535, 70000)), 95],
  targetPort: [orJunk(fc.constantFrom(8080, "http")), 30],
});

const FAMILIES = ["IPv4", "IPv6", "ipv4"];

const spec = fields({
  type: [
    orJunk(
      weighted(
        fc.constant("LoadBalancer"),
        fc.constantFrom("ClusterIP", "NodePort", "ExternalName", ""),
        3,
      ),
    ),
    90,
  ],
  loadBalancerIP: [orJunk(weighted(address, fc.constant(""), 6)), 30],
  loadBalancerClass: [orJunk(fc.constantFrom("metallb", "other.example/lb", "")), 8],
  clusterIP: [orJunk(fc.constantFrom("10.96.0.10", "None", "fd00::10", "")), 30],
  clusterIPs: [orJunk(fc.array(fc.constantFrom("10.96.0.10", "fd00::10"), { maxLength: 3 })), 30],
  ipFamilies: [orJunk(fc.array(fc.constantFrom(...FAMILIES), { maxLength: 3 })), 30],
  ipFamilyPolicy: [
    orJunk(fc.constantFrom("SingleStack", "PreferDualStack", "RequireDualStack")),
    20,
  ],
  externalTrafficPolicy: [orJunk(fc.constantFrom("Cluster", "Local")), 30],
  selector: [orJunk(labels), 50],
  ports: [orJunk(fc.array(orJunk(port), { maxLength: 3 })), 70],
  externalIPs: [orJunk(fc.array(orJunk(address), { maxLength: 3 })), 12],
});

const ingress = fields({
  ip: [orJunk(address), 90],
  hostname: [orJunk(fc.constant("lb.example")), 10],
});
const status = fields({
  loadBalancer: [
    orJunk(fields({ ingress: [orJunk(fc.array(orJunk(ingress), { maxLength: 2 })), 80] })),
    90,
  ],
});

/** Fields nobody reads, at any level. */
const extraFields = fc.dictionary(hostileString, junk, { maxKeys: 2 });

function service(ref: { namespace: Json; name: Json }): fc.Arbitrary<Json> {
  const metadata = fc
    .tuple(
      fields({
        // Mostly the request's own identity; now and then another.
        name: [weighted(fc.constant(ref.name), orJunk(name), 4), 90],
        generateName: [orJunk(fc.constantFrom("web-", "")), 10],
        namespace: [weighted(fc.constant(ref.namespace), orJunk(namespace), 4), 70],
        labels: [orJunk(labels), 30],
        annotations: [orJunk(annotations), 60],
      }),
      extraFields,
    )
    .map(([known, extra]) => ({ ...extra, ...known }));
  return fc
    .tuple(
      fields({
        apiVersion: [orJunk(fc.constant("v1")), 80],
        kind: [orJunk(fc.constant("Service")), 80],
        metadata: [orJunk(metadata), 95],
        spec: [orJunk(spec), 95],
        status: [orJunk(status), 20],
      }),
      extraFields,
    )
    .map(([known, extra]) => ({ ...extra, ...known }) as Json);
}

// ---- reviews ----

const SERVICE_KIND = { group: "", version: "v1", kind: "Service" };

const kind = weighted<Json>(
  fc.constant(SERVICE_KIND),
  fc.oneof(
    fc.constantFrom<Json>(
      { group: "", version: "v1", kind: "Pod" },
      { group: "apps", version: "v1", kind: "Service" },
      { group: "", version: "v1" },
      { version: "v1", kind: "Service" },
    ),
    fields({
      group: [orJunk(fc.constant("")), 80],
      version: [orJunk(fc.constant("v1")), 80],
      kind: [orJunk(fc.constant("Service")), 80],
    }),
    junk,
  ),
  15,
);

const uid = weighted(fc.uuid(), orJunk(hostileString), 10);

/** A whole AdmissionReview from the grammar. */
export const review: fc.Arbitrary<Json> = fc
  .record({ namespace: orJunk(namespace), name: orJunk(name) })
  .chain((ref) =>
    fc.tuple(
      fields({
        uid: [uid, 99],
        kind: [kind, 99],
        resource: [fc.constant<Json>({ group: "", version: "v1", resource: "services" }), 50],
        namespace: [fc.constant(ref.namespace), 90],
        name: [fc.constant(ref.name), 85],
        operation: [
          orJunk(
            weighted(fc.constantFrom("CREATE", "UPDATE"), fc.constantFrom("DELETE", "CONNECT"), 6),
          ),
          99,
        ],
        subResource: [orJunk(fc.constantFrom("status", "proxy", "")), 12],
        object: [weighted(service(ref), fc.constant(null), 10), 95],
        oldObject: [weighted(service(ref), fc.constant(null), 2), 50],
        dryRun: [orJunk(fc.boolean()), 50],
        userInfo: [
          fc.constant<Json>({ username: "kubernetes-admin", groups: ["system:masters"] }),
          50,
        ],
      }),
      extraFields,
      weighted(
        fc.constant("admission.k8s.io/v1"),
        orJunk(fc.constantFrom("admission.k8s.io/v1beta1", "v1")),
        20,
      ),
      weighted(fc.constant("AdmissionReview"), orJunk(fc.constant("AdmissionRequest")), 20),
    ),
  )
  .map(([request, extra, apiVersion, reviewKind]) => ({
    ...extra,
    apiVersion,
    kind: reviewKind,
    request: request as Json,
  }));

// ---- mutations of whole reviews ----

type Edit = "delete" | "replace" | "insert" | "flip";

/** Every container and key under `root`, parents before children. */
function slots(
  root: Json,
): (readonly [container: Json[] | Record<string, Json>, key: string | number])[] {
  const found: (readonly [Json[] | Record<string, Json>, string | number])[] = [];
  const queue: Json[] = [root];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    if (next === null || typeof next !== "object" || found.length > 2_000) continue;
    const entries: [string | number, Json][] = Array.isArray(next)
      ? next.map((value, index) => [index, value])
      : Object.entries(next);
    for (const [key, value] of entries) {
      found.push([next, key]);
      queue.push(value);
    }
  }
  return found;
}

/** The value as another JSON type: what a client confusing its types would send. */
function flipped(value: Json): Json {
  if (typeof value === "string") return Number.isNaN(Number(value)) ? value.length : Number(value);
  if (typeof value === "number") return String(value);
  if (typeof value === "boolean") return String(value);
  if (value === null) return {};
  if (Array.isArray(value)) return Object.fromEntries(value.map((entry, index) => [index, entry]));
  return Object.values(value);
}

function edited(
  root: Json,
  edits: readonly { edit: Edit; at: number; key: string; value: Json }[],
): Json {
  // Not structuredClone: it recurses, and the deepest values here are 2,000 levels.
  const copy = JSON.parse(JSON.stringify(root)) as Json;
  for (const { edit, at, key, value } of edits) {
    const all = slots(copy);
    const slot = all[at % Math.max(1, all.length)];
    if (slot === undefined) return copy;
    const [container, where] = slot;
    const current = (container as Record<string | number, Json>)[where] as Json;
    if (edit === "delete") {
      if (Array.isArray(container)) container.splice(where as number, 1);
      else delete container[where as string];
    } else if (edit === "replace") (container as Record<string | number, Json>)[where] = value;
    else if (edit === "flip")
      (container as Record<string | number, Json>)[where] = flipped(current);
    else if (Array.isArray(current)) current.push(value);
    else if (current !== null && typeof current === "object") current[key] = value;
    else (container as Record<string | number, Json>)[where] = { [key]: value };
  }
  return copy;
}

const mutatedReview: fc.Arbitrary<Json> = fc
  .tuple(
    review,
    fc.array(
      fc.record({
        edit: fc.constantFrom<Edit>("delete", "replace", "insert", "flip"),
        at: fc.nat(),
        key: weighted(
          fc.constantFrom("uid", "kind", "object", "spec", "__proto__", "loadBalancerIP"),
          hostileString,
          1,
        ),
        value: junk,
      }),
      { minLength: 1, maxLength: 4 },
    ),
  )
  .map(([base, edits]) => edited(base, edits));

// ---- mutations of the bytes ----

/** Byte sequences that are not UTF-8: lone continuation, overlong, surrogate, past U+10FFFF. */
const INVALID_UTF8 = [
  [0xff],
  [0x80],
  [0xc3],
  [0xc0, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
];
/** Numbers JSON allows and a reader cannot keep as they are. */
const HUGE_NUMBERS = ["1e400", "-1e400", "1e-400", "123456789012345678901234567890", "-0", "0.1e1"];
const FRAGMENTS = [
  ",",
  '"',
  "\\",
  "{",
  "}",
  "[",
  "]",
  ":",
  "\u0000",
  '{"a":',
  "\ufeff",
  "}{",
  "null",
];

type ByteEdit =
  | { readonly kind: "truncate"; readonly at: number }
  | { readonly kind: "overwrite"; readonly at: number; readonly byte: number }
  | { readonly kind: "invalid-utf8"; readonly at: number; readonly sequence: number }
  | { readonly kind: "huge-number"; readonly at: number; readonly number: string }
  | { readonly kind: "insert"; readonly at: number; readonly fragment: string };

const byteEdit: fc.Arbitrary<ByteEdit> = fc.oneof(
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("overwrite" as const), at: fc.nat(), byte: fc.nat(255) }),
  fc.record({
    kind: fc.constant("invalid-utf8" as const),
    at: fc.nat(),
    sequence: fc.nat(INVALID_UTF8.length - 1),
  }),
  fc.record({
    kind: fc.constant("huge-number" as const),
    at: fc.nat(),
    number: fc.constantFrom(...HUGE_NUMBERS),
  }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    fragment: fc.constantFrom(...FRAGMENTS),
  }),
);

function applyByteEdit(body: Buffer, edit: ByteEdit): Buffer {
  const at = edit.at % (body.length + 1);
  switch (edit.kind) {
    case "truncate":
      return body.subarray(0, at);
    case "overwrite": {
      const copy = Buffer.from(body);
      if (at < copy.length) copy[at] = edit.byte;
      return copy;
    }
    case "invalid-utf8":
      return Buffer.concat([
        body.subarray(0, at),
        Buffer.from(INVALID_UTF8[edit.sequence] ?? []),
        body.subarray(at),
      ]);
    case "insert":
      return Buffer.concat([body.subarray(0, at), Buffer.from(edit.fragment), body.subarray(at)]);
    case "huge-number": {
      // The n-th number of the text, or the first when there are fewer.
      const text = body.toString("latin1");
      const numbers = [...text.matchAll(/-?\d+(\.\d+)?([eE][-+]?\d+)?/g)];
      const found = numbers[edit.at % Math.max(1, numbers.length)];
      if (found?.index === undefined) return body;
      return Buffer.concat([
        body.subarray(0, found.index),
        Buffer.from(edit.number),
        body.subarray(found.index + found[0].length),
      ]);
    }
  }
}

const mutatedBytes: fc.Arbitrary<Buffer> = fc
  .tuple(review, fc.array(byteEdit, { minLength: 1, maxLength: 3 }))
  .map(([base, edits]) => edits.reduce(applyByteEdit, Buffer.from(JSON.stringify(base))));

/** One request: a body of each origin, to either webhook, now and then not as JSON. */
export const fuzzCase: fc.Arbitrary<FuzzCase> = fc
  .tuple(
    fc.oneof(
      {
        arbitrary: review.map((value) => ["grammar", Buffer.from(JSON.stringify(value))] as const),
        weight: 5,
      },
      {
        arbitrary: mutatedReview.map(
          (value) => ["mutated", Buffer.from(JSON.stringify(value))] as const,
        ),
        weight: 3,
      },
      { arbitrary: mutatedBytes.map((body) => ["bytes", body] as const), weight: 2 },
    ),
    fc.constantFrom("validate" as const, "mutate" as const),
    weighted(
      fc.constantFrom(...JSON_CONTENT_TYPES),
      fc.constantFrom("text/plain", "application/yaml", "application/jsonx"),
      30,
    ),
  )
  .map(([[origin, body], webhook, contentType]) => ({
    webhook,
    origin,
    contentType,
    body,
    // A failure's report names the case; its body, up to 3 MiB, would bury the report.
    [fc.toStringMethod]: () =>
      `${origin} case to /${webhook} as ${contentType}, ${body.length} bytes: ${JSON.stringify(body.toString("utf8", 0, 400))}…`,
  }));

// The caBundle of the webhook configurations: the JSON patch that puts the CA bundle into every
// webhook that holds another set of CAs, and whether every webhook trusts a CA already.

import { asRecord } from "../../base/objects.ts";
import { bundleFingerprints, sameBundle } from "../../certs/bundle.ts";
import { inspectCertificate } from "../../certs/inspect.ts";

export type JsonPatchOperation =
  | { readonly op: "test"; readonly path: string; readonly value: unknown }
  | { readonly op: "add"; readonly path: string; readonly value: unknown };

/**
 * The JSON patch that sets caBundle to `bundle` in every webhook of `configuration` whose
 * caBundle holds another set of certificates; [] when all are right (then nothing is sent).
 * Each entry is guarded by a test of its name, and the whole by a test of the resourceVersion:
 * a configuration changed since it was read refuses the patch instead of being overwritten.
 */
export function caBundlePatch(configuration: unknown, bundle: string): JsonPatchOperation[] {
  const object = asRecord(configuration);
  const webhooks = Array.isArray(object.webhooks) ? object.webhooks : [];
  const encoded = Buffer.from(bundle, "utf8").toString("base64");
  const ops: JsonPatchOperation[] = [];
  webhooks.forEach((entry, index) => {
    const webhook = asRecord(entry);
    const current = asRecord(webhook.clientConfig).caBundle;
    const decoded =
      typeof current === "string" ? Buffer.from(current, "base64").toString("utf8") : "";
    if (sameBundle(decoded, bundle) && bundleFingerprints(bundle).length > 0) return;
    ops.push(
      { op: "test", path: `/webhooks/${index}/name`, value: webhook.name },
      { op: "add", path: `/webhooks/${index}/clientConfig/caBundle`, value: encoded },
    );
  });
  if (ops.length === 0) return [];
  const resourceVersion = asRecord(object.metadata).resourceVersion;
  return [{ op: "test", path: "/metadata/resourceVersion", value: resourceVersion }, ...ops];
}

/** True when every webhook of `configuration` trusts the CA `caPem` (it is in its caBundle). */
export function trustsCa(configuration: unknown, caPem: string | undefined): boolean {
  const fingerprint = inspectCertificate(caPem)?.fingerprint;
  if (fingerprint === undefined) return false;
  const webhooks = Array.isArray(asRecord(configuration).webhooks)
    ? (asRecord(configuration).webhooks as unknown[])
    : [];
  return webhooks.every((entry) => {
    const current = asRecord(asRecord(entry).clientConfig).caBundle;
    if (typeof current !== "string") return false;
    return bundleFingerprints(Buffer.from(current, "base64").toString("utf8")).includes(
      fingerprint,
    );
  });
}

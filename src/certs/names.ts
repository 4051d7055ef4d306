// The names a serving certificate is valid for: those of the webhook's Service in every form a
// client dials, compared and merged as sets, and read back from a certificate's subjectAltName.

import { isIP } from "node:net";

/** The names a serving certificate is valid for (subjectAltName DNS and IP entries). */
export interface ServingNames {
  readonly dns: readonly string[];
  readonly ips: readonly string[];
}

/**
 * The names a serving certificate needs: `<service>.<namespace>.svc` (what the API server
 * dials for a service reference), `.svc.cluster.local`, `<service>.<namespace>` and `<service>`,
 * then the extra names (--tls-san: DNS names or IP addresses), deduplicated in that order.
 */
export function servingNames(
  service: string,
  namespace: string,
  extra: readonly string[] = [],
): ServingNames {
  const dns: string[] = [
    `${service}.${namespace}.svc`,
    `${service}.${namespace}.svc.cluster.local`,
    `${service}.${namespace}`,
    service,
  ];
  const ips: string[] = [];
  for (const name of extra) {
    const target = isIP(name) === 0 ? dns : ips;
    const value = isIP(name) === 0 ? name.toLowerCase() : canonicalIp(name);
    if (!target.includes(value)) target.push(value);
  }
  return { dns: [...new Set(dns)], ips };
}

/** Every name in `wanted` is in `have` (IPs compared in canonical form). */
export function coversNames(have: ServingNames, wanted: ServingNames): boolean {
  const dns = new Set(have.dns.map((name) => name.toLowerCase()));
  const ips = new Set(have.ips.map(canonicalIp));
  return (
    wanted.dns.every((name) => dns.has(name.toLowerCase())) &&
    wanted.ips.every((ip) => ips.has(canonicalIp(ip)))
  );
}

/** `wanted` first, then the names only `have` has: a replica never drops another's names. */
export function unionNames(wanted: ServingNames, have: ServingNames): ServingNames {
  const dns = [...wanted.dns];
  for (const name of have.dns) if (!dns.includes(name)) dns.push(name);
  const ips = wanted.ips.map(canonicalIp);
  for (const ip of have.ips.map(canonicalIp)) if (!ips.includes(ip)) ips.push(ip);
  return { dns, ips };
}

/** The names of an X509Certificate's `subjectAltName` text (`DNS:a, IP Address:b`). */
export function subjectAltNames(text: string | undefined): ServingNames {
  const dns: string[] = [];
  const ips: string[] = [];
  for (const part of (text ?? "").split(/,\s*/)) {
    const dnsMatch = /^DNS:(.+)$/.exec(part);
    const ipMatch = /^IP Address:(.+)$/.exec(part);
    if (dnsMatch?.[1] !== undefined) dns.push(dnsMatch[1]);
    else if (ipMatch?.[1] !== undefined) ips.push(canonicalIp(ipMatch[1]));
  }
  return { dns, ips };
}

/** IPv6 in its compressed lower-case form (OpenSSL prints full groups); IPv4 as is. */
function canonicalIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return ip.toLowerCase();
  }
}

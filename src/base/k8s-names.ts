// Kubernetes object names (k8s.io/apimachinery's validation): Namespaces and Services are DNS
// labels, most other objects (Secrets, webhook configurations) and label-key prefixes DNS
// subdomains.

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** RFC 1123 label: at most 63 characters of lower-case alphanumerics and '-'. */
export function isDnsLabel(text: string): boolean {
  return text.length <= 63 && LABEL.test(text);
}

/** RFC 1123 subdomain: at most 253 characters, labels joined by '.'. */
export function isDnsSubdomain(text: string): boolean {
  return text.length <= 253 && text.split(".").every((label) => label !== "" && LABEL.test(label));
}

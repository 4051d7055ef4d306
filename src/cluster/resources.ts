// The collections lb-ip-guard reads, for the long-running watches and the one-shot snapshot
// alike. IPAddressPools and the ConfigMap are read in MetalLB's namespace only, as MetalLB does;
// AddressReservations in every namespace.

export interface Resource {
  /** For logs and messages. */
  readonly name: string;
  readonly path: string;
  readonly fieldSelector?: string;
  /** A custom resource whose definition may be missing (404 = none of them). */
  readonly optional?: boolean;
}

export interface ClusterResources {
  readonly services: Resource;
  readonly configMap: Resource;
  readonly ipAddressPools: Resource;
  readonly namespaces: Resource;
  readonly reservations: Resource;
}

export function clusterResources(metallbNamespace: string): ClusterResources {
  const ns = encodeURIComponent(metallbNamespace);
  return {
    services: { name: "Services", path: "/api/v1/services" },
    configMap: {
      name: `ConfigMap ${metallbNamespace}/config`,
      path: `/api/v1/namespaces/${ns}/configmaps`,
      fieldSelector: "metadata.name=config",
    },
    ipAddressPools: {
      name: `IPAddressPools (metallb.io/v1beta1, ${metallbNamespace})`,
      path: `/apis/metallb.io/v1beta1/namespaces/${ns}/ipaddresspools`,
      optional: true,
    },
    namespaces: { name: "Namespaces", path: "/api/v1/namespaces" },
    // Optional: a cluster whose CRD is not (yet) installed has none, and is not kept unready.
    reservations: {
      name: "AddressReservations (lb-ip-guard.dev/v1alpha1)",
      path: "/apis/lb-ip-guard.dev/v1alpha1/addressreservations",
      optional: true,
    },
  };
}

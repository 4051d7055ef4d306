// Which MetalLB release the cluster runs, read from the image of its controller Deployment: the
// Service keys MetalLB reads changed between releases (docs/metallb-versions.md), and nothing in
// the API says which release answers (the CRDs of v0.13 to today look alike to a client).

import {
  formatMetalLBVersion,
  type MetalLBVersion,
  parseMetalLBVersion,
} from "../ipam/metallb-version.ts";
import { describeError, type KubeClient } from "./kube.ts";

export type Detected =
  | { readonly version: MetalLBVersion; readonly from: string }
  | { readonly version: undefined; readonly why: string };

/** The tag of a MetalLB controller image: `quay.io/metallb/controller:v0.11.0` → v0.11.0. */
const CONTROLLER_IMAGE = /(?:^|\/)metallb\/controller:(v?\d+\.\d+\.\d+)(?:@sha256:[0-9a-f]+)?$/;

interface DeploymentLike {
  readonly metadata?: { readonly name?: string; readonly namespace?: string };
  readonly spec?: {
    readonly template?: {
      readonly spec?: { readonly containers?: readonly { readonly image?: string }[] };
    };
  };
}

/**
 * The release of the MetalLB controller among `deployments`. MetalLB's manifests and Helm chart
 * name the image `<registry>/metallb/controller:<tag>`; a digest-only or unversioned tag (`main`)
 * tells nothing, and two different releases at once (an upgrade under way) are not guessed at.
 */
export function releaseOf(deployments: readonly unknown[]): Detected {
  const found = new Map<string, { version: MetalLBVersion; from: string }>();
  for (const item of deployments as readonly DeploymentLike[]) {
    for (const container of item.spec?.template?.spec?.containers ?? []) {
      const tag = CONTROLLER_IMAGE.exec(container.image ?? "")?.[1];
      if (tag === undefined) continue;
      const parsed = parseMetalLBVersion(tag);
      if (!parsed.ok) continue;
      const where = `${item.metadata?.namespace ?? ""}/${item.metadata?.name ?? ""}`;
      found.set(formatMetalLBVersion(parsed.value), {
        version: parsed.value,
        from: `Deployment ${where} runs ${container.image}`,
      });
    }
  }
  const [first, ...others] = found.values();
  if (first === undefined) {
    return { version: undefined, why: "no Deployment runs a metallb/controller:vX.Y.Z image" };
  }
  if (others.length > 0) {
    return {
      version: undefined,
      why: `Deployments run MetalLB ${[...found.keys()].join(" and ")} at once`,
    };
  }
  return first;
}

/** Reads the Deployments of MetalLB's namespace; a failure is an unknown release, with the why. */
export async function detectMetalLBRelease(
  client: KubeClient,
  metallbNamespace: string,
): Promise<Detected> {
  try {
    const { items } = await client.list(
      `/apis/apps/v1/namespaces/${encodeURIComponent(metallbNamespace)}/deployments`,
    );
    const detected = releaseOf(items);
    return detected.version === undefined
      ? { version: undefined, why: `${detected.why} in namespace ${metallbNamespace}` }
      : detected;
  } catch (error) {
    return {
      version: undefined,
      why: `cannot list Deployments in ${metallbNamespace}: ${describeError(error)}`,
    };
  }
}

// The YAML `convert` writes: a header saying what it is and where it came from, then one document
// per object in the conversion's order, each with a comment naming its source in the ConfigMap.

import { Document } from "yaml";
import type { Conversion } from "../../ipam/config/convert.ts";

export function renderConversion(conversion: Conversion, origin: string): string {
  const header = [
    ` Converted by lb-ip-guard convert from ${origin}:`,
    " the legacy configuration of MetalLB v0.11-v0.12, as the custom resources MetalLB reads",
    " from v0.13 on. Apply them before upgrading past v0.12; from v0.13 the ConfigMap is ignored.",
    ...conversion.warnings.map((warning) => ` warning: ${warning}`),
  ];
  if (conversion.objects.length === 0) {
    return `${header.map((line) => `#${line}`).join("\n")}\n# The configuration declares nothing.\n`;
  }
  return conversion.objects
    .map((converted, index) => {
      const document = new Document(converted.object);
      const provenance = ` ${converted.kind} ${converted.name}: from ${converted.from}`;
      document.commentBefore = (index === 0 ? [...header, "", provenance] : [provenance]).join(
        "\n",
      );
      return document.toString({ lineWidth: 0 });
    })
    .join("---\n");
}

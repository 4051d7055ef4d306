// Pool configuration errors stay on one line.

import assert from "node:assert/strict";
import { test } from "node:test";
import { formatPoolConfigError } from "../../../src/ipam/config/errors.ts";
import { legacy, onlyError } from "./fixtures.ts";

test("formatPoolConfigError keeps one line even for hostile input", () => {
  const result = legacy(
    'address-pools:\n- name: "two\\nlines"\n  protocol: layer2\n  "bad\\nkey": 1\n  addresses: [10.0.0.0/24]\n',
  );
  const line = formatPoolConfigError(onlyError(result));
  assert.ok(!line.includes("\n"), line);
  assert.match(line, /two\\nlines/);
});

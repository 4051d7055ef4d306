#!/usr/bin/env node
// The `lb-ip-guard` command (package.json bin).

import { STANDALONE, startProgram } from "./program.ts";

startProgram(STANDALONE);

#!/usr/bin/env node
console.error("lb-ip-guard: not built yet");
process.exit(2);

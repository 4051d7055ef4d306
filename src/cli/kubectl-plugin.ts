#!/usr/bin/env node
// `kubectl lb-ip-guard ...`: kubectl runs the executable `kubectl-lb_ip_guard` found on PATH
// (package.json bin) with the arguments after the plugin's name. A plugin acts on the cluster
// kubectl points at, so `check` and `pools` read it without --cluster; --kubeconfig, --context
// and KUBECONFIG pick it, as they do for kubectl.

import { startProgram } from "./program.ts";

startProgram({ name: "kubectl lb-ip-guard", clusterByDefault: new Set(["check", "pools"]) });

#!/usr/bin/env node
import { x } from "../ipam/hello.ts";

console.log(x);

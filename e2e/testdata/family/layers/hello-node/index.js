#!/usr/bin/env node
console.log("hello from node " + process.version);

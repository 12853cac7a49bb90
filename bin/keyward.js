#!/usr/bin/env node
'use strict';
const path = require('node:path');
const { loadDotEnv } = require(path.join(__dirname, '..', 'dist', 'src', 'config.js'));
const { runCli } = require(path.join(__dirname, '..', 'dist', 'src', 'cli', 'main.js'));

loadDotEnv();
runCli(process.argv.slice(2)).then((code) => process.exit(code));

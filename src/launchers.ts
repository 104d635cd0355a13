// Processes that start the service rather than being it: package managers, and the watchers and
// supervisors that run the app as a child. NODE_OPTIONS preloads promotel into them too, and there it
// would hold the port for as long as they live (register.ts keeps it out).
import { basename } from 'node:path';

// Entry scripts of npm, npx, yarn 1 and berry, pnpm, corepack (and its shims), and of the watchers and
// supervisors that run the app as a child process: nodemon, node-dev, ts-node-dev, tsx, concurrently,
// forever. Run through their bin links (/usr/bin/npm, node_modules/.bin/nodemon) they have no extension.
const LAUNCHER = /^(npm-cli|npx-cli|npm|npx|pnpm|pnpx|yarn|yarnpkg|yarn-[\d.]+|corepack|nodemon|node-dev|ts-node-dev|tsnd|tsx|concurrently|forever)(\.(c|m)?js)?$/;

export function isLauncher(script: string | undefined): boolean {
  return script !== undefined && LAUNCHER.test(basename(script));
}

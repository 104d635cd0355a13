// The programmatic API, for those who prefer code to a preload flag:
//   const promotel = require('promotel');
//   promotel.start({ port: 9464 });
export { start, shutdown, getMeter, type Agent } from './agent';
export { readConfig, DEFAULTS, VARIABLES, type Config } from './config';
export { serialize } from './exposition/serialize';

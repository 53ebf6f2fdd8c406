import { defineBench } from '@austa/bench';
import { standaloneCases } from './cases.js';

// Against @langchain/redis (node-redis) on a standalone server: its history cannot use a node-redis cluster client.
export default defineBench({
  package: 'conversation-context',
  topologies: ['standalone'],
  cases: standaloneCases(),
});

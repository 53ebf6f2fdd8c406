import { defineBench } from '@austa/bench';
import { clusterCases } from './cases.js';

// On the cluster the rival is @langchain/community's ioredis history (see standalone.bench.ts for why).
export default defineBench({
  package: 'conversation-context',
  topologies: ['cluster'],
  cases: clusterCases(),
});

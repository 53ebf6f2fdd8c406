import { tsupPreset } from '@austa/presets/tsup';

// Two entries: the LangChain mapping lives apart so that importing the store never loads @langchain/core.
export default tsupPreset({ entry: ['src/index.ts', 'src/langchain.ts'] });

// Dataset loading: `import { openDataset, packDataset } from 'flyfs/dataset'`.
export { openDataset, Dataset, planBatches, type Batch, type Cursor, type LoaderOptions, type OpenDatasetOptions } from './loader.js';
export { packDataset, localFolderSamples, flyfsFolderSamples, type PackOptions } from './pack.js';
export { epochPermutation, rankOrder, SeededRandom } from './order.js';
export { type DatasetManifest, manifestName, indexName, shardName } from './format.js';

// Checkpoints: `import { saveCheckpoint, loadCheckpoint, ... } from 'flyfs/checkpoint'`.
export {
  saveCheckpoint, loadCheckpoint, listCheckpoints, latestCheckpoint, readCheckpointManifest, pruneCheckpoints,
  stepDirName, type SaveOptions, type LoadOptions, type TensorInput, type TensorData, type TensorSpec, type LoadedTensor,
  type CheckpointInfo, type CheckpointManifest, type TensorEntry,
} from './checkpoint.js';

// Preprocessing jobs: `import { readParquet } from 'flyfs/jobs'`.
export { DataFrame, readParquet, readCsv, readJson, read_parquet, read_csv, read_json } from './dataframe.js';
export { runJob, type RunJobOptions, type JobSummary, type JobEvent, type StageSummary } from './driver.js';
export { checkPlan, type Plan, type Stage, type InputFormat } from './plan.js';

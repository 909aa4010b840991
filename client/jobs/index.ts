// Preprocessing jobs: `import { readParquet } from 'flyfs/jobs'`.
export { DataFrame, readParquet, readCsv, readJson, readGensort, graySort, read_parquet, read_csv, read_json } from './dataframe.js';
export { genRecords, validateSorted, recordBytes, type SortValidation } from './graysort.js';
export { runJob, type RunJobOptions, type JobSummary, type JobEvent, type StageSummary } from './driver.js';
export { checkPlan, type Plan, type Stage, type InputFormat } from './plan.js';

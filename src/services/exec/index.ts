/** The exec service: remote commands without a shell, in their own process groups, audited. */
export type { AuditSink, ExecAuditEntry } from './audit.js';
export { EXEC_DEFAULTS, type ExecServiceOptions, SAFE_ENV_NAMES } from './options.js';
export { type ExecService, execService } from './service.js';

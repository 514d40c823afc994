/** The exec service: remote commands without a shell, in their own process groups, audited. */
export type { ExecAuditEntry } from './audit.js';
export type { ExecServiceOptions } from './options.js';
export { type ExecService, execService } from './service.js';

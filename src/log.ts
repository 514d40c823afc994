/** Log levels in increasing severity; a logger drops entries below its level. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Every level, least severe first (the choices of `serve --log-level`). */
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Structured logger: JSON lines when the output is not a terminal, short text lines when it is. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Default: JSON unless the stream is a TTY. */
  json?: boolean;
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const stream = options.stream ?? process.stderr;
  const json = options.json ?? !stream.isTTY;
  const threshold = RANK[options.level ?? 'info'];
  const write = (level: LogLevel, message: string, fields?: Record<string, unknown>): void => {
    if (RANK[level] < threshold) return;
    if (json) {
      stream.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...fields })}\n`);
      return;
    }
    const extra = fields
      ? Object.entries(fields)
          .map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`)
          .join(' ')
      : '';
    stream.write(`${level === 'info' ? '' : `${level}: `}${message}${extra ? `  ${extra}` : ''}\n`);
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
  };
}

/** A logger that drops everything: the library default, so embedding sockit prints nothing. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

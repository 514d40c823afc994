import { SockitError } from '../errors.js';

/** The first descriptor systemd passes (`SD_LISTEN_FDS_START`): 0-2 are stdio. */
export const LISTEN_FDS_START = 3;

/** One socket systemd passed: its descriptor and its `FileDescriptorName=` (default `unknown`). */
export interface ActivatedSocket {
  fd: number;
  name: string;
}

/**
 * systemd socket activation (`sd_listen_fds(3)`): the sockets in `LISTEN_FDS` starting at fd 3,
 * named by `LISTEN_FDNAMES`, when `LISTEN_PID` is this process. Undefined when there are none
 * or they were meant for another process (a parent that passed its environment on). The three
 * variables are removed from `env` either way, so no command this server starts believes the
 * sockets are its own.
 */
export function takeSocketActivation(
  env: NodeJS.ProcessEnv = process.env,
  pid: number = process.pid,
): ActivatedSocket[] | undefined {
  const { LISTEN_PID: listenPid, LISTEN_FDS: listenFds, LISTEN_FDNAMES: names } = env;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (listenFds === undefined || listenPid === undefined || Number(listenPid) !== pid) return undefined;
  const count = Number(listenFds);
  if (!/^\d+$/.test(listenFds) || count < 1) return undefined;
  const given = names?.split(':') ?? [];
  return Array.from({ length: count }, (_, i) => ({
    fd: LISTEN_FDS_START + i,
    name: given[i] || 'unknown',
  }));
}

/**
 * The addresses to serve under socket activation: with none given, every activated socket
 * (`fd:3`, `fd:4`, …); `fd:NAME` and `tls+fd:NAME` become the descriptor systemd named so.
 * Without activation a name is an error that says so; numbers pass through untouched.
 */
export function resolveActivated(
  addresses: readonly string[],
  activated: ActivatedSocket[] | undefined,
): string[] {
  if (addresses.length === 0) return activated?.map((socket) => `fd:${socket.fd}`) ?? [];
  return addresses.map((text) => {
    const named = /^((?:tls\+)?fd:)([A-Za-z_][\w.-]*)$/.exec(text.trim());
    if (!named) return text;
    const [, prefix, name] = named;
    if (!activated) {
      throw new SockitError(
        'USAGE',
        `${text}: a socket name needs systemd socket activation (LISTEN_FDS for this process); use fd:N for a plain inherited descriptor`,
      );
    }
    const socket = activated.find((candidate) => candidate.name === name);
    if (!socket) {
      throw new SockitError(
        'USAGE',
        `${text}: systemd passed no socket named "${name}" (names: ${activated.map((s) => s.name).join(', ')})`,
      );
    }
    return `${prefix}${socket.fd}`;
  });
}

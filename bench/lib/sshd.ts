/**
 * A private OpenSSH server for the benchmarks: `/usr/sbin/sshd -D` on a free loopback port with
 * a host key and a client key generated into a temp dir, so no system key, config or HOME is
 * touched. `StrictModes no` because the temp dir's modes are not sshd's business here.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeOnExit, startServerChild } from './children.js';
import { freePort } from './ports.js';

/** Where the benchmarks look for sshd (Debian's openssh-server). */
export const SSHD = '/usr/sbin/sshd';

/** A running sshd and the `ssh` arguments that log in to it with the generated key. */
export interface Sshd {
  port: number;
  /** sshd's pid: its sessions are its children (for CPU accounting). */
  pid: number;
  /** ssh options before the host: port, key, no known_hosts prompts, no user config. */
  sshArgs: string[];
  /** An environment for ssh: HOME in the temp dir, so ~/.ssh is never read. */
  env: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

/** Whether sshd and ssh-keygen are installed. */
export function hasSshd(): boolean {
  return existsSync(SSHD) && existsSync('/usr/bin/ssh-keygen') && existsSync('/usr/bin/ssh');
}

/** What a suite's sshd does besides the defaults. */
export interface SshdOptions {
  /** Every session runs this (in a pty when the client asks for one). */
  forceCommand?: string;
  /** More sshd_config lines, e.g. `AllowTcpForwarding yes`, `Ciphers aes128-gcm@openssh.com`. */
  config?: readonly string[];
}

/** Starts a private sshd on a free loopback port. */
export async function startSshd(options: SshdOptions): Promise<Sshd> {
  // sshd refuses to start without its privilege separation directory; the package creates it.
  if (!existsSync('/run/sshd') && process.getuid?.() === 0) mkdirSync('/run/sshd', { mode: 0o755 });
  const dir = mkdtempSync(join(tmpdir(), 'sockit-bench-sshd-'));
  removeOnExit(dir);
  try {
    const keygen = (file: string): void => {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, file)], {
        stdio: 'ignore',
      });
    };
    keygen('host_key');
    keygen('id');
    execFileSync('cp', [join(dir, 'id.pub'), join(dir, 'authorized_keys')]);
    const port = await freePort();
    const config = join(dir, 'sshd_config');
    writeFileSync(
      config,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${join(dir, 'host_key')}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        'StrictModes no',
        'UsePAM no',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PubkeyAuthentication yes',
        'PermitRootLogin prohibit-password',
        'PermitTTY yes',
        'PrintMotd no',
        'PrintLastLog no',
        'UseDNS no',
        ...(options.forceCommand ? [`ForceCommand ${options.forceCommand}`] : []),
        ...(options.config ?? []),
        'LogLevel ERROR',
        '',
      ].join('\n'),
    );
    // sshd -D prints nothing when ready: its port says.
    const child = await startServerChild({
      name: 'sshd',
      command: SSHD,
      args: ['-D', '-e', '-f', config],
      readyPort: port,
    });
    const home = join(dir, 'home');
    return {
      port,
      pid: child.pid,
      sshArgs: [
        '-F',
        '/dev/null',
        '-p',
        String(port),
        '-i',
        join(dir, 'id'),
        '-o',
        'IdentitiesOnly=yes',
        '-o',
        'StrictHostKeyChecking=no',
        '-o',
        `UserKnownHostsFile=${join(dir, 'known_hosts')}`,
        '-o',
        'BatchMode=yes',
        '-o',
        'LogLevel=ERROR',
      ],
      env: { HOME: home },
      async stop() {
        await child.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

#!/usr/bin/env python3
"""Remote shell-command server, "sticky packet" (粘包) fix variant.

Source (seed 002, see SEEDS.md): the second remote-command server, the one that
"solves sticky packets" with struct.

WIRE FORMAT (exactly as in the seed code)
  request  client -> server: the command as raw UTF-8 bytes, NO framing. The
           server takes whatever one recv(1024) returns as one command, so a
           command longer than 1024 bytes, or two commands sent back to back,
           are mis-split. The client must wait for each reply before sending again.
  response server -> client: 4-byte header struct.pack("i", len(body)) followed
           by body. "i" has no byte-order prefix: native byte order, signed
           32-bit (little-endian on x86-64/arm64). There is NO JSON header
           (the article's prose describes "header length + JSON header + body",
           but its code only sends this 4-byte length).
           body = the command's stderr if stderr is non-empty, otherwise its
           stdout (stdout is thrown away whenever anything was written to
           stderr); if that is empty, body = "执行成功".encode("gbk")
           (b'\xd6\xb4\xd0\xd0\xb3\xc9\xb9\xa6'). The command output bytes are
           sent unchanged (UTF-8 on Linux; the seed's client decodes as GBK
           because it was written for Windows).
  No auth, no encryption: any peer can run any shell command (shell=True).
  One client at a time (iterative accept loop); empty recv ends the session.

Kept from the seed: backlog 5, buffer 1024, subprocess.Popen(cmd.decode('utf-8'),
shell=True, stdin/stdout/stderr=PIPE), stderr-else-stdout rule, "执行成功".
Changes, all needed to run unattended:
  * host/port from argv (port 0 ok), one `ready <port>` line on stdout (flushed),
    diagnostics to stderr, runs until killed;
  * SO_REUSEADDR is set, as in the seed article's first (non-sticky) version of
    this same server;
  * res.communicate() instead of res.stderr.read() then res.stdout.read(): the
    seed's order deadlocks once stdout exceeds the pipe buffer (~64 KiB), and it
    left stdin open so commands reading stdin hung forever. Same result bytes.
  * sendall() instead of send() so large bodies are never cut short;
  * conn.close() after the session (the seed leaked it until the next accept).

LATENCY NOTE: the reply is written with two calls (header, then body) as in the
seed. With Nagle's algorithm on (the default) the body waits for the ACK of the
4-byte header, which the client delays (~40 ms on Linux), so every small
command costs ~40 ms of pure waiting (measured on loopback: 50 x `echo hello`
= 2.2 s, vs 0.017 s with TCP_NODELAY). This is faithful seed behaviour.
`--nodelay` (off by default) sets TCP_NODELAY on accepted sockets for an
apples-to-apples comparison.

Usage: remote_cmd_server.py HOST PORT [--nodelay]
"""
import argparse
import struct
import subprocess
import sys
from socket import AF_INET, IPPROTO_TCP, SO_REUSEADDR, SOCK_STREAM, SOL_SOCKET, TCP_NODELAY, socket

BACK_LOG = 5
BUFFER_SIZE = 1024
assert struct.calcsize("i") == 4


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--nodelay", action="store_true",
                   help="set TCP_NODELAY on client connections (not in the seed)")
    a = p.parse_args()
    ip_port = (a.host, a.port)

    tcp_server = socket(AF_INET, SOCK_STREAM)
    tcp_server.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
    tcp_server.bind(ip_port)
    tcp_server.listen(BACK_LOG)
    print(f"ready {tcp_server.getsockname()[1]}", flush=True)

    try:
        while True:
            conn, addr = tcp_server.accept()
            log("新的客户端链接", addr)
            if a.nodelay:
                conn.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
            while True:
                # 收
                try:
                    cmd = conn.recv(BUFFER_SIZE)
                    if not cmd:
                        break
                    log("收到客户端的命令", cmd)
                    # 执行命令,得到的运行结果cmd_res
                    res = subprocess.Popen(cmd.decode("utf_8"), shell=True,
                                           stderr=subprocess.PIPE,
                                           stdout=subprocess.PIPE,
                                           stdin=subprocess.PIPE)
                    out, err = res.communicate()
                    if err:
                        cmd_res = err
                    else:
                        cmd_res = out
                    # 发
                    if not cmd_res:
                        cmd_res = "执行成功".encode("gbk")
                    # 解决粘包: 4-byte native int length, then the body
                    length = len(cmd_res)
                    data_length = struct.pack("i", length)
                    conn.sendall(data_length)
                    conn.sendall(cmd_res)
                except Exception:
                    break
            conn.close()
    except KeyboardInterrupt:
        pass
    finally:
        tcp_server.close()


if __name__ == "__main__":
    main()

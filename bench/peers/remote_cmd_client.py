#!/usr/bin/env python3
"""Remote shell-command client for remote_cmd_server.py (seed 002, sticky-packet fix).

Framing (see remote_cmd_server.py): send the command as raw UTF-8 (no framing,
must fit one recv(1024) on the server); receive struct "i" (4-byte native-order
signed int) length, then that many bytes of output.

Modes:
  remote_cmd_client.py HOST PORT              interactive, as in the seed:
        `>>>` prompt, empty input skipped, `quit` (or EOF) leaves without
        sending anything, prints "命令的执行结果是" + output decoded as GBK
        (the seed targets Windows; use --encoding utf-8 on Linux).
  remote_cmd_client.py HOST PORT N CMD...     benchmark: connect once, run CMD
        (remaining args joined by spaces) N times sequentially over that one
        connection, discard the output, print the total seconds of the N
        round trips (connect time excluded) as one number on stdout.

Fixes to the seed client, needed for it to work at all:
  * the seed's body loop did `recv_data = recv(...)` / `recv_size = len(recv_data)`
    (overwrite instead of accumulate, starting from the str "b"), so any
    output longer than 1024 bytes hung forever and only the last chunk was
    printed; here chunks are accumulated until `length` bytes are read;
  * the 4-byte header is read exactly (the seed's single recv(4) may return less);
  * `tcp_client.close` (no parentheses) is actually called.
"""
import argparse
import struct
import sys
import time
from socket import AF_INET, SOCK_STREAM, socket

BUFFER_SIZE = 1024


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(min(BUFFER_SIZE, n - len(buf)))
        if not chunk:
            raise ConnectionError("server closed the connection mid-reply")
        buf += chunk
    return buf


def run_cmd(tcp_client, cmd):
    tcp_client.send(cmd.encode("utf-8"))
    # 解决粘包
    length_data = recv_exact(tcp_client, 4)
    length = struct.unpack("i", length_data)[0]
    return recv_exact(tcp_client, length)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("n", nargs="?", type=int, help="run CMD this many times (benchmark mode)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="command for benchmark mode")
    p.add_argument("--encoding", default="gbk", help="decode output in interactive mode (seed: gbk)")
    a = p.parse_args()
    if a.n is not None and not a.cmd:
        p.error("benchmark mode needs: HOST PORT N CMD")

    tcp_client = socket(AF_INET, SOCK_STREAM)
    tcp_client.connect((a.host, a.port))
    try:
        if a.n is not None:
            cmd = " ".join(a.cmd)
            raw = cmd.encode("utf-8")
            if not raw.strip() or len(raw) > BUFFER_SIZE:
                p.error("CMD must be 1..1024 bytes (the server reads one recv(1024) per command)")
            start = time.perf_counter()
            for _ in range(a.n):
                run_cmd(tcp_client, cmd)
            print(f"{time.perf_counter() - start:.6f}", flush=True)
            return
        while True:
            try:
                cmd = input(">>>").strip()
            except EOFError:
                break
            if not cmd:
                continue
            if cmd == "quit":
                break
            recv_data = run_cmd(tcp_client, cmd)
            print("命令的执行结果是", recv_data.decode(a.encoding, errors="replace"), flush=True)
    finally:
        tcp_client.close()


if __name__ == "__main__":
    main()

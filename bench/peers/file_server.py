#!/usr/bin/env python3
"""Line-by-line file receiver -- peer reproduction of seed 004's file_receive.py.

Protocol (exactly the seed's, no framing):
  client sends one line of the file (raw bytes, newline included);
  server does ONE recv(1024); if the bytes are exactly b'quit' the transfer
  ends, otherwise they are appended to the output file and the server replies
  b'success'. The client waits for b'success' before sending the next line.
Known flaws kept on purpose: a final line that is exactly `quit` (no trailing
newline) is taken as the end marker and dropped; a line longer than 1024 bytes
is read in several pieces, each acknowledged with its own b'success', which
desynchronises the client; no names, sizes, checksums or auth. The output file
is reopened in 'ab' (append) mode for every recv, as in the seed, so it is
created even for an empty upload and repeated uploads are concatenated.

Changes for unattended use: host/port/output path from argv (the seed
hard-coded 127.0.0.1:9999 and the file name 'file'); one `ready <port>` line on
stdout (flushed), diagnostics on stderr; the seed accepted ONE client and
exited -- here it loops accepting clients until killed (`--once` restores the
seed's single transfer); an empty recv (client gone without `quit`) ends the
session instead of spinning; the connection is closed after each transfer.

Usage: file_server.py HOST PORT OUTPUT_PATH [--once]
"""
import argparse
import socket
import sys

BACK_LOG = 5
BUFFER_SIZE = 1024


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("output_path")
    p.add_argument("--once", action="store_true", help="exit after one transfer, like the seed")
    a = p.parse_args()

    sk = socket.socket()
    sk.bind((a.host, a.port))
    sk.listen(BACK_LOG)
    print(f"ready {sk.getsockname()[1]}", flush=True)

    try:
        while True:
            conn, address = sk.accept()
            log("文件接收开始", address)
            try:
                while True:
                    with open(a.output_path, "ab") as f:
                        data = conn.recv(BUFFER_SIZE)
                        if data == b"quit":
                            break
                        if not data:  # peer closed without `quit`
                            break
                        f.write(data)
                    conn.send("success".encode())
            except OSError as e:
                log("连接错误", e)
            conn.close()
            log("文件接收完成")
            if a.once:
                break
    except KeyboardInterrupt:
        pass
    finally:
        sk.close()


if __name__ == "__main__":
    main()

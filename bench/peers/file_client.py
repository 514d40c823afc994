#!/usr/bin/env python3
"""Line-by-line file sender -- peer reproduction of seed 004's file_send.py.

For each line of the file (opened 'rb', iterated with `for i in f`): send the
line, recv(1024), stop if the reply is not exactly b'success'; finally send
b'quit'. See file_server.py for the protocol and its flaws.

Changes for unattended use: host/port/path from argv (the seed hard-coded
127.0.0.1:9999 and 'D:\\socket_server_tcp2.py'); sendall() for each line; the
socket is closed and the process exits when done: exit status 0 if every line
was acknowledged, 1 if the loop stopped early on a reply other than b'success'
(the seed silently sent `quit` in that case too, which we still do).

Usage: file_client.py HOST PORT PATH
"""
import socket
import sys

BUFFER_SIZE = 1024


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: file_client.py HOST PORT PATH")
    ip_port = (sys.argv[1], int(sys.argv[2]))
    path = sys.argv[3]

    ok = True
    sk = socket.socket()
    sk.connect(ip_port)
    with open(path, "rb") as f:
        # 按每一段分割文件上传
        for i in f:
            sk.sendall(i)
            # 等待接收完成标志
            data = sk.recv(BUFFER_SIZE)
            if data != b"success":
                ok = False
                print("unexpected reply, stopping:", data, file=sys.stderr)
                break
    # 给服务端发送结束信号
    try:
        sk.send("quit".encode())
    except OSError:  # server already closed (e.g. it took a last line `quit` as the end)
        ok = False
    sk.close()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

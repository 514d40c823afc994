#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal, the way a person at a keyboard would.

Usage: pty_run.py EXPECT SEND [EXPECT SEND ...] -- COMMAND ARGS...
For each pair: wait until the output after the previous EXPECT contains this one, then type SEND (Python escapes
such as \\x03 for Ctrl-C and \\x04 for Ctrl-D are decoded). Then read to the end and print one
JSON line: {"output": everything the terminal showed, "code": exit status, or 128+signal}.
Every wait has a 20 s deadline, so a hung command fails its test instead of hanging it.
"""
import json
import os
import pty
import select
import sys
import time

DEADLINE_S = 20


def main():
    split = sys.argv.index("--")
    steps = sys.argv[1:split]
    command = sys.argv[split + 1:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    output = b""
    deadline = time.monotonic() + DEADLINE_S

    def read_some():
        nonlocal output
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return False
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the command closed the terminal
            return False
        output += chunk
        return bool(chunk)

    seen = 0
    for expect, send in zip(steps[0::2], steps[1::2]):
        want = expect.encode()
        while output.find(want, seen) == -1:
            if not read_some():
                sys.exit(f"pty_run: {expect!r} never appeared; output: {output!r}")
        seen = output.find(want, seen) + len(want)
        os.write(fd, send.encode().decode("unicode_escape").encode("latin1"))
    while read_some():
        pass
    reaped, status = os.waitpid(pid, os.WNOHANG)
    if reaped == 0:  # still running at the deadline
        os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    print(json.dumps({"output": output.decode("utf-8", "replace"), "code": code if code >= 0 else 128 - code}))


if __name__ == "__main__":
    main()

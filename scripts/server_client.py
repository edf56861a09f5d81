"""Shared by the server scripts: start examples/server on a free port, talk JSON to it."""
import http.client
import json
import re
import subprocess


class Server:
    def __init__(self, binary, args):
        self.proc = subprocess.Popen([binary, "--port", "0", *args], stderr=subprocess.PIPE)
        line = self.proc.stderr.readline().decode()
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if not match:
            raise SystemExit(f"the server did not start: {line!r}")
        self.port = int(match.group(1))
        # Keep draining its per-request log so that it never blocks on a full pipe.
        import threading
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def rss_kib(self):
        for line in open(f"/proc/{self.proc.pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return -1

    def connect(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def post(conn, path, body):
    """(status, raw body) on a kept-alive connection."""
    conn.request("POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()

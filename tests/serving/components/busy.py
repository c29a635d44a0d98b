"""A predictor that is not a KServe model server: it serves V1 on the port
it is given as $(PORT), takes a while per request (as a real model would)
and answers with its process id, so that a test can see which copy of
the command served each request."""
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORK_SECONDS = 0.2


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.reply({'ready': True})

    def do_POST(self):
        self.rfile.read(int(self.headers.get('Content-Length') or 0))
        time.sleep(WORK_SECONDS)
        self.reply({'predictions': [os.getpid()]})

    def reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


if __name__ == '__main__':
    port = int(sys.argv[sys.argv.index('--port') + 1])
    ThreadingHTTPServer(('127.0.0.1', port), Handler).serve_forever()

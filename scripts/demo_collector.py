#!/usr/bin/env python3
# scripts/demo_collector.py PORT FILE
# The demo's OpenLineage collector: a stand-in for Marquez on 127.0.0.1:PORT
# that accepts each POSTed event (200) and appends it, one JSON document per
# line, to FILE, so that the demo can show what pg_pipeline's sender
# delivered. (The test suite's collector, test/openlineage/collector.js,
# also validates the events against the official schemas.)
import http.server
import json
import sys

port, path = int(sys.argv[1]), sys.argv[2]


class Collector(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        event = json.loads(body)
        with open(path, "a") as f:
            f.write(json.dumps(event) + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", port), Collector).serve_forever()

"""moto's DynamoDB-compatible server, answering one request at a time.

Real DynamoDB applies a conditional UpdateItem to an item atomically. moto's own
`moto_server` is threaded and checks a condition and writes in separate steps, so
concurrent increments of one counter can race there; serialising requests restores
DynamoDB's per-item atomicity for the tests. Usage: dynamodb_server.py HOST PORT
"""

import sys

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    run_simple(
        host,
        port,
        DomainDispatcherApplication(create_backend_app),
        threaded=False,
        request_handler=MotoRequestHandler,
    )

"""nginx in two roles: the fast upstream (``return 200`` with a JSON body) and the reference proxy.

Each instance gets its own folder with its config, pid file, logs and temp paths, runs with
``daemon off`` under ``Processes`` (so it is stopped with the run) and listens on loopback only.
Access logs are off in both: the reference proxy is nginx as people benchmark it.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.procs import LOOPBACK, Child, Processes, wait_for_port

# About 200 bytes, like a small API answer. No `$` (nginx variables) and no single quote.
JSON_BODY = (
    '{"id":12345,"status":"shipped","customer":{"id":"c-981","name":"Ada Lovelace",'
    '"tier":"gold"},"items":[{"sku":"A-100","qty":2,"price":1999},{"sku":"B-220","qty":1,'
    '"price":4999}],"total":8997,"currency":"EUR"}'
)
_KEEPALIVE_REQUESTS = 1_000_000  # nginx's default 1000 would make wrk reconnect mid-run


def main_block(folder: Path, workers: str) -> str:
    """The main context and the start of ``http {}``: everything but the servers."""
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = folder / "temp"
    return f"""{user}worker_processes {workers};
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    keepalive_timeout 75s;
    keepalive_requests {_KEEPALIVE_REQUESTS};
"""


def upstream_config(folder: Path, port: int) -> str:
    """nginx answering every request with 200 and ``JSON_BODY``.

    Its header buffer holds a head carrying a signed identity assertion (about 700 bytes more)
    in one piece, as an upstream that receives one is set up: past nginx's default 1 KiB it would
    copy every such head into a second buffer, a cost of the upstream's configuration that the
    assertion row would otherwise charge to the gateway."""
    return (
        main_block(folder, "auto")
        + f"""    server {{
        listen {LOOPBACK}:{port} backlog=4096;
        client_header_buffer_size 4k;
        location / {{
            default_type application/json;
            return 200 '{JSON_BODY}';
        }}
    }}
}}
"""
    )


def _pool(name: str, port: int) -> str:
    """A keep-alive pool to one loopback server, as both proxy configurations use it."""
    return f"""    upstream {name} {{
        server {LOOPBACK}:{port};
        keepalive 64;
        keepalive_requests {_KEEPALIVE_REQUESTS};
    }}
"""


def proxy_config(folder: Path, port: int, upstream_port: int) -> str:
    """nginx ``proxy_pass`` to the upstream over a keep-alive pool, no authentication."""
    return (
        main_block(folder, "auto")
        + _pool("backend", upstream_port)
        + f"""    server {{
        listen {LOOPBACK}:{port} backlog=4096;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
    )


def auth_request_config(folder: Path, port: int, upstream_port: int, gateway_port: int) -> str:
    """nginx ``proxy_pass`` as in ``proxy_config``, each request first asking the gateway's
    ``/auth/verify`` (``auth_request``, over its own keep-alive pool) and passing on the identity
    headers and assertion it answers with: deploy/forward-auth/nginx.conf, tuned as the
    reference proxy is."""
    return (
        main_block(folder, "auto")
        + _pool("backend", upstream_port)
        + _pool("gateway", gateway_port)
        + f"""    server {{
        listen {LOOPBACK}:{port} backlog=4096;
        location = /_gateway_verify {{
            internal;
            proxy_pass http://gateway/auth/verify;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Original-URI $request_uri;
        }}
        location / {{
            auth_request /_gateway_verify;
            auth_request_set $gateway_subject $upstream_http_x_auth_subject;
            auth_request_set $gateway_scopes $upstream_http_x_auth_scopes;
            auth_request_set $gateway_assertion $upstream_http_x_gateway_assertion;
            proxy_set_header X-Auth-Subject $gateway_subject;
            proxy_set_header X-Auth-Scopes $gateway_scopes;
            proxy_set_header X-Gateway-Assertion $gateway_assertion;
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""
    )


def start_nginx(
    processes: Processes, nginx: str, name: str, folder: Path, config: str, port: int
) -> Child:
    """Write ``config`` into ``folder`` and run nginx on it until the port accepts."""
    (folder / "temp").mkdir(parents=True, exist_ok=True)
    path = folder / "nginx.conf"
    path.write_text(config)
    child = processes.start(
        name, [nginx, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(path)]
    )
    wait_for_port(child, port)
    return child

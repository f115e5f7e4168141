"""nginx as the benchmark's front upstream: static files itself, the rest passed to the Python upstream.

The proxies under test see a single app on a single port, as in a real deployment: ``/static/``
is nginx's (sendfile, one worker), every other path (``/``, ``/sse``, ``/upload``, websockets) is
relayed to the Python upstream without buffering in either direction.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_max_body_size 0;
    client_body_buffer_size 1m;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    default_type application/octet-stream;
    types {{ text/plain txt; }}
    map $http_upgrade $connection_upgrade {{ default upgrade; "" ""; }}
    upstream python {{ server 127.0.0.1:{python_port}; keepalive 256; }}
    server {{
        {listen}
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_buffering off;
        proxy_request_buffering off;
        proxy_read_timeout 600s;
        proxy_send_timeout 600s;
        location /static/ {{ alias {data}/; }}
        location / {{ proxy_pass http://python; }}
        # The 1 MiB-message websockets: nginx relays an upgraded connection through two buffers of
        # proxy_buffer_size (4 KiB by default: some 500 syscalls per MiB, which capped the direct column);
        # proxy_buffers only so that nginx accepts the size (with proxy_buffering off it allocates none).
        location ~ {bulk_path}$ {{ proxy_pass http://python; proxy_buffer_size {bulk_buffer};
                                   proxy_buffers 4 {bulk_buffer}; proxy_busy_buffers_size {bulk_buffer}; }}
    }}
}}
"""


#: The path (at the end of the URL) of the 1 MiB-message websockets, and nginx's relay buffer for them
#: (each way; only those websockets get it: 1,000 idle ones would hold 2 GiB of address space).
BULK_WS_PATH = "/ws-bulk"
BULK_WS_BUFFER = "1m"


def binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def write_conf(root: Path, *, port: int, python_port: int, data: Path, ipv6: bool) -> Path:
    """Write ``root/nginx.conf`` (and its temp folders); returns its path."""
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    listen = f"listen 127.0.0.1:{port} backlog=4096;"
    if ipv6:
        listen += f" listen [::1]:{port} backlog=4096;"
    conf = root / "nginx.conf"
    conf.write_text(CONF.format(
        root=root, data=data, python_port=python_port, listen=listen, bulk_path=BULK_WS_PATH,
        bulk_buffer=BULK_WS_BUFFER,
        # As root, workers would drop to nobody, who may not reach the data folder.
        user="user root;" if os.geteuid() == 0 else "",
    ))
    return conf


def command(nginx: str, root: Path, conf: Path) -> list[str]:
    return [nginx, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")]

"""`make run`: the demo upstream (API and single-page app) on :9000, the gateway on :8080.

On first run it creates the demo user (``demo`` / ``demo-password``) in ./users.yaml; the
gateway itself creates its signing key in ./keys and its SQLite store in ./data.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_USER = "demo"
DEMO_PASSWORD = "demo-password"

HOWTO = f"""
Gateway demo: http://localhost:8080 -> demo upstream http://127.0.0.1:9000 (admin :9090)

  In a browser (user {DEMO_USER}, password {DEMO_PASSWORD}); use localhost, the public_url:
    the demo app:        http://localhost:8080/app/
    the sign-in page:    http://localhost:8080/auth/login
    a protected page:    http://localhost:8080/api/whoami   (sends you to sign in, and back)

  # a public route, no token needed
  curl -i http://localhost:8080/public/hello

  # a protected route without a token: 401
  curl -i http://localhost:8080/api/orders

  # log in (the refresh token lands in the cookie jar), then call with the access token
  TOKEN=$(curl -s -c jar.txt -H 'Content-Type: application/json' \\
      -d '{{"username":"{DEMO_USER}","password":"{DEMO_PASSWORD}"}}' \\
      http://localhost:8080/auth/login | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  curl -i -H "Authorization: Bearer $TOKEN" http://localhost:8080/api/orders
  curl -i -H "Authorization: Bearer $TOKEN" http://localhost:8080/api/whoami

  # a new access token from the refresh cookie, then log out
  curl -s -b jar.txt -c jar.txt -X POST http://localhost:8080/auth/refresh
  curl -i -b jar.txt -c jar.txt -X POST http://localhost:8080/auth/logout

  # see why a request is refused:  .venv/bin/gateway explain GET /api/orders --token "$TOKEN"
  # health and metrics:            curl http://127.0.0.1:9090/readyz ; curl http://127.0.0.1:9090/metrics
"""


def main() -> int:
    gateway = [sys.executable, "-m", "gateway.cli"]
    config = ROOT / "routes.yaml"
    if not (ROOT / "users.yaml").exists():
        subprocess.run(
            [
                *gateway,
                "users",
                "add",
                DEMO_USER,
                "--scopes",
                "orders:read,orders:write",
                "--password-stdin",
                "--config",
                str(config),
            ],
            input=DEMO_PASSWORD + "\n",
            text=True,
            check=True,
            cwd=ROOT,
        )
    upstream = subprocess.Popen(
        [sys.executable, "-m", "examples.demo_upstream", "--port", "9000"], cwd=ROOT
    )
    server = subprocess.Popen(
        [*gateway, "serve", "--config", str(config), "--log-format", "text"], cwd=ROOT
    )
    time.sleep(1.5)
    if server.poll() is None:
        print(HOWTO, file=sys.stderr, flush=True)
    try:
        return server.wait()
    except KeyboardInterrupt:
        server.send_signal(signal.SIGTERM)
        return server.wait()
    finally:
        upstream.terminate()
        upstream.wait()


if __name__ == "__main__":
    sys.exit(main())

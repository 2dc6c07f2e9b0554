"""Gateway workers are separate processes sharing one SQLite file: rotation stays atomic."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from gateway.store import RotationOutcome, hash_token, open_store

NOW = 1_700_000_000.0
PROCESSES = 4
ROTATIONS_PER_PROCESS = 5

# Each worker opens its own store on the file, waits for a common instant, then presents the
# same token ROTATIONS_PER_PROCESS times concurrently and prints one outcome per line.
WORKER = textwrap.dedent(
    """
    import asyncio, secrets, sys, time
    from pathlib import Path
    from gateway.store import hash_token, open_store

    async def main(database, token_hash, start_at, rotations):
        store = open_store(f"sqlite:///{database}", base_dir=Path("."))
        async with store:
            await store.ping()
            time.sleep(max(0.0, start_at - time.time()))
            answers = await asyncio.gather(*(
                store.rotate(
                    token_hash=token_hash,
                    new_token_hash=hash_token(secrets.token_urlsafe(32)),
                    now=%r,
                    idle_ttl=3600,
                    grace=10,
                )
                for _ in range(rotations)
            ))
        for answer in answers:
            print(answer.outcome.value)

    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])))
    """
    % (NOW + 5)
)


async def test_processes_rotating_one_token_on_one_file_rotate_it_once(tmp_path: Path) -> None:
    database = tmp_path / "gateway.db"
    token_hash = hash_token("shared-refresh-token")
    async with open_store(f"sqlite:///{database}", base_dir=tmp_path) as store:
        await store.start_session(
            sid="sid-1",
            sub="alice",
            token_hash=token_hash,
            data="{}",
            now=NOW,
            absolute_ttl=3600,
            idle_ttl=3600,
        )
    start_at = str(time.time() + 1.0)
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                str(database),
                token_hash,
                start_at,
                str(ROTATIONS_PER_PROCESS),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    outcomes: list[str] = []
    for worker in workers:
        stdout, stderr = await asyncio.to_thread(worker.communicate, timeout=30)
        assert worker.returncode == 0, stderr
        outcomes += stdout.split()
    assert sorted(outcomes) == ["grace"] * (PROCESSES * ROTATIONS_PER_PROCESS - 1) + [
        RotationOutcome.ROTATED.value
    ]

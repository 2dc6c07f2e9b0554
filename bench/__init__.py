"""The benchmark suite: ``python -m bench.run`` (or ``make bench``). See bench/README.md.

procs.py            starting and always stopping the processes a run needs; RSS sampling
system.py           installing wrk and nginx when missing; the machine description
nginx.py            nginx as the fast upstream and as the reference proxy
fixture.py          the gateway's generated routes.yaml (30 routes), its key and tokens
wrk.py              running wrk and parsing its report
stream_upstream.py  a raw-ASGI upstream that produces or swallows bytes without buffering
floor_proxy.py      raw ASGI + aiohttp: the best feature-less Python proxy issue 5 measured
cpu.py              CPU seconds of the servers, of wrk and of everyone else during a row
plan.py             the rows, the settings (full or --quick) and the results collected
phases.py           the phases of a run, in order
stream.py           1 GiB each way through the gateway, with the gateway's peak RSS
verify_cost.py      in-process cost of Verifier.verify, cached and not; cache boundedness
auth_flow.py        login and refresh throughput on SQLite (when the gateway has them)
profile.py          py-spy during a c=50 run, summarised by own time
targets.py          issue 5's targets as PASS/FAIL lines
report.py           the table, and the JSON saved in bench/results/
run.py              the command: install, run the phases, print, save
"""

"""Operations: assembling a worker, reloading it, the admin listener and the process supervisor.

app.py         GatewayApp: the worker's ASGI application, its lifespan and live reload
watch.py       what a reload watches
admin.py       /healthz, /readyz, /metrics on the admin listener
supervisor.py  worker processes under uvicorn, and the supervisor that owns them
explain.py     gateway explain: what the gateway would do with a request, and why
"""

"""Request rules: one request from its head to its upstream and back, in named stages.

front_door.py  FrontDoor: the stages in order (head, framing, preflight, own endpoints, route,
               authenticate, limits, forward)
forward.py     forwarding one request and streaming the answer, with the one retry policy
runtime.py     Runtime: everything a request needs, built once per configuration
paths.py       normalise_path            routing.py  RouteTable
headers.py     HeaderPolicy              access.py   RouteAccess, Denial
cors.py        CorsPolicy                origins.py  OriginCheck (cross-site requests)
ratelimit.py   RateLimiter               balancer.py Balancer (round robin, passive health)
"""

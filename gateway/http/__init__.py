"""The wire: HTTP/1.1 in (the server protocol) and out (the upstream client), nothing about tokens.

server.py    GatewayHttpProtocol: uvicorn's httptools protocol, with less work per request
acceptor.py  Acceptor: takes every connection waiting on a listening socket at each wake-up
client.py    UpstreamPool, Connection: the data path's keep-alive client
contract.py  what the server and the application tell each other, as named values
errors.py    send_error: the one JSON error body
"""

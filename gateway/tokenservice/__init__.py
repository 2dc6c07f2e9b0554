"""The token service: login, refresh, logout, the sign-in pages and the operator commands.

endpoints.py   TokenEndpoints: /auth/login, /auth/refresh, /auth/logout
sessions.py    SessionService: login sessions over the refresh-token store, no HTTP
cookies.py     SessionCookies: the refresh and access cookies
pages.py       the HTML sign-in and signed-in pages
login_form.py  reading a login body (JSON or form), bounded
throttle.py    LoginThrottle: failed-login limits
users.py       who may log in: the users file or users.verify_url
passwords.py   argon2id hashing, same cost for unknown users
commands.py    users add, token mint, sessions revoke
"""

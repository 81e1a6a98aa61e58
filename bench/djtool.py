"""In-process helper, run with each server's own Python: prepare its database, count SQL, count live tokens.

    python bench/djtool.py setup KIND | queries KIND OWNER_ID | live KIND EMAIL (token in BENCH_TOKEN)

KIND is ours, simplejwt or allauth; the environment is the one the server gets
(DJANGO_SETTINGS_MODULE, database, keys). Prints one JSON object.
"""

import base64
import json
import os
import re
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
USERS = int(os.environ.get("BENCH_USERS", "20"))
TODOS_PER_USER = 10
PASSWORD = "bench passphrase 42 horse"
TABS_EMAIL = "tabs@bench.example"
KEEP_TABLES = {"django_content_type", "auth_permission", "auth_group", "auth_group_permissions", "django_site"}


def email_of(index: int) -> str:
    return f"user{index}@bench.example"


def _django(kind: str) -> None:
    sys.path.insert(0, str(BENCH.parent if kind == "ours" else BENCH / "peers"))
    import django

    django.setup()


def setup(kind: str) -> dict:
    """Migrate, empty every data table, and seed USERS users (+ the tabs user) with 10 todos each."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    call_command("migrate", verbosity=0, interactive=False)
    tables = [t for t in connection.introspection.django_table_names(only_existing=True) if t not in KEEP_TABLES]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(connection.ops.quote_name(t) for t in tables)} RESTART IDENTITY CASCADE")
    Todo = _todo_model(kind)
    User = get_user_model()
    encoded = make_password(PASSWORD)  # one Argon2 hash (random salt) shared by the seeded accounts
    ids = []
    for email in [email_of(i) for i in range(USERS)] + [TABS_EMAIL]:
        if kind == "ours":
            user = User.objects.create(email=email, password=encoded, email_verified_at=timezone.now())
        else:
            user = User.objects.create(username=email, email=email, password=encoded)
        if kind == "allauth":
            from allauth.account.models import EmailAddress

            EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        Todo.objects.bulk_create(
            Todo(owner=user, title=f"Todo {n} of {email}", notes="Some notes " * 3, completed=n % 3 == 0)
            for n in range(TODOS_PER_USER)
        )
        ids.append(user.pk)
    return {"owner_id": ids[0], "users": len(ids)}


def _todo_model(kind: str):
    from django.apps import apps

    return apps.get_model("todos" if kind == "ours" else "peer_todos", "Todo")


class _Recorder:
    """Every statement with the outermost atomic block it ran in (None: autocommit)."""

    def __init__(self):
        self.statements = []

    def __call__(self, execute, sql, params, many, context):
        from django.db import connection

        block = connection.atomic_blocks[0] if connection.atomic_blocks else None
        self.statements.append((sql, block))
        return execute(sql, params, many, context)


def _measure(call) -> tuple[object, list]:
    from django.db import connection

    recorder = _Recorder()
    with connection.execute_wrapper(recorder):
        result = call()
    return result, recorder.statements


def _describe(sql: str) -> str:
    """'SELECT sessions FOR UPDATE', 'UPDATE sessions', 'INSERT rotated_refresh_tokens', ..."""
    table = re.search(r'(?:FROM|UPDATE|INTO) "([^"]+)"', sql)
    return " ".join(
        filter(None, [sql.split()[0], table and table.group(1), "FOR UPDATE" if "FOR UPDATE" in sql else ""])
    )


def _transactions(statements) -> int:
    blocks = []
    for _sql, block in statements:
        if block is None or not any(block is seen for seen in blocks):
            blocks.append(block)
    return len(blocks)


class _Protocol:
    """Login, refresh and list through Django's test client, for one KIND."""

    def __init__(self, kind: str):
        from django.test import Client

        self.kind = kind
        self.client = Client(HTTP_HOST="127.0.0.1")

    def _post(self, path, data=None):
        return self.client.post(path, json.dumps(data) if data is not None else "", content_type="application/json")

    def login(self, email):
        if self.kind == "ours":
            response = self._post("/api/auth/login/", {"email": email, "password": PASSWORD})
            return response, response.json().get("access"), response.cookies["todo_refresh"].value
        if self.kind == "simplejwt":
            response = self._post("/api/token/", {"username": email, "password": PASSWORD})
            return response, response.json().get("access"), response.json().get("refresh")
        response = self._post("/_allauth/app/v1/auth/login", {"email": email, "password": PASSWORD})
        meta = response.json().get("meta", {})
        return response, meta.get("access_token"), meta.get("refresh_token")

    def refresh(self, token):
        if self.kind == "ours":
            self.client.cookies["todo_refresh"] = token
            response = self._post("/api/auth/refresh/")
            cookie = response.cookies.get("todo_refresh")
            return response, cookie.value if cookie is not None and response.status_code == 200 else None
        if self.kind == "simplejwt":
            response = self._post("/api/token/refresh/", {"refresh": token})
            return response, response.json().get("refresh")
        response = self._post("/_allauth/app/v1/tokens/refresh", {"refresh_token": token})
        return response, response.json().get("data", {}).get("refresh_token")

    def list(self, access, path="/api/todos/"):
        return self.client.get(path, HTTP_AUTHORIZATION=f"Bearer {access}")


def queries(kind: str, owner_id: int) -> dict:
    """SQL statements per request of each workload, with a warm cache (one warm-up request each)."""
    proto = _Protocol(kind)
    email = email_of(1)
    proto.login(email)  # warm-up: imports, first connection
    (response, access, refresh), login_sql = _measure(lambda: proto.login(email))
    assert response.status_code == 200, response.content
    response = proto.list(access)  # warm-up, fills the session-state cache
    assert response.status_code == 200 and response.json()["count"] == TODOS_PER_USER, response.content
    _, list_sql = _measure(lambda: proto.list(access))
    _response, refresh = proto.refresh(refresh)  # warm-up
    (response, new_refresh), refresh_sql = _measure(lambda: proto.refresh(refresh))
    assert response.status_code == 200 and new_refresh, response.content
    (replay, _), replay_sql = _measure(lambda: proto.refresh(refresh))  # the just-rotated token again (a 2nd tab)
    result = {
        "a": len(list_sql),
        "b": len(refresh_sql),
        "c": len(login_sql),
        # (d): one of 8 tabs rotates, the other 7 present the just-rotated token.
        "d": round((len(refresh_sql) + 7 * len(replay_sql)) / 8, 2),
        "replay_status": replay.status_code,
        "replay_statements": len(replay_sql),
        "refresh_transactions": _transactions(refresh_sql),
        "refresh_statements": [_describe(sql) for sql, _ in refresh_sql],
    }
    if kind == "ours":
        path = f"/api/bench-floor/{owner_id}/todos/"
        proto.list(None, path)
        response, floor_sql = _measure(lambda: proto.list(None, path))
        assert response.status_code == 200 and response.json()["count"] == TODOS_PER_USER, response.content
        result["floor"] = len(floor_sql)
    return result


def _jti(token: str) -> str | None:
    """The jti claim of a JWT, read without verifying it (the token came from the server itself)."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"]
    except (IndexError, ValueError, KeyError):
        return None


def live(kind: str, email: str, token: str) -> dict:
    """How many refresh tokens of EMAIL's account would still be accepted, and whether TOKEN (the one the
    client kept) is one of them."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    user = get_user_model().objects.get(email=email)
    if kind == "ours":
        from accounts.models import DeviceSession
        from accounts.tokens import hash_token

        sessions = [s for s in DeviceSession.objects.filter(user=user) if s.is_live()]
        held = any(s.refresh_token_hash == hash_token(token) for s in sessions)
        return {
            "live": len(sessions),
            "sessions": len(sessions),
            "client_token_live": held,
            "meaning": "live device sessions, one refresh token each",
        }
    if kind == "simplejwt":
        from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

        jtis = set(
            OutstandingToken.objects.filter(
                user=user, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True
            ).values_list("jti", flat=True)
        )
        return {
            "live": len(jtis),
            "client_token_live": _jti(token) in jtis,
            "meaning": "outstanding, unexpired, not blacklisted refresh tokens",
        }
    from django.contrib.sessions.models import Session

    now, jtis, sessions = time.time(), set(), 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()):
        data = session.get_decoded()
        if data.get("_auth_user_id") == str(user.pk):
            sessions += 1
            jtis |= {jti for jti, exp in data.get("headless_refresh_tokens", {}).items() if exp > now}
    return {
        "live": len(jtis),
        "sessions": sessions,
        "client_token_live": _jti(token) in jtis,
        "meaning": "unexpired refresh-token ids held by the user's sessions",
    }


def main() -> None:
    command, kind = sys.argv[1], sys.argv[2]
    _django(kind)
    if command == "setup":
        result = setup(kind)
    elif command == "queries":
        result = queries(kind, int(sys.argv[3]))
    else:
        result = live(kind, sys.argv[3], os.environ.get("BENCH_TOKEN", ""))
    print(json.dumps(result))


if __name__ == "__main__":
    main()

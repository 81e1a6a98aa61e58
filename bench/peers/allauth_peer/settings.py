"""allauth peer: headless app-client login and token refresh, JWT strategy, DRF JWTTokenAuthentication."""

import os

from peer_common.settings_base import *  # noqa: F403
from peer_common.settings_base import INSTALLED_APPS, JWT_SIGNING_KEY, MIDDLEWARE, REST_FRAMEWORK

ROOT_URLCONF = "allauth_peer.urls"
INSTALLED_APPS = [*INSTALLED_APPS, "allauth", "allauth.account", "allauth.headless"]
MIDDLEWARE = [*MIDDLEWARE, "allauth.account.middleware.AccountMiddleware"]
AUTHENTICATION_BACKENDS = ["allauth.account.auth_backends.AuthenticationBackend"]
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_AUTHENTICATION_CLASSES": ["allauth.headless.contrib.rest_framework.authentication.JWTTokenAuthentication"],
}

ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
# Rate limits on, as deployed (allauth's default), in a cache the processes share (Django's own
# Redis backend); raised for the two the benchmark hits, like RATE_LIMIT_* for the app, so that
# they count every attempt but never refuse one.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ["PEER_REDIS_URL"],
        "KEY_PREFIX": os.environ["PEER_CACHE_PREFIX"],
    }
}
ACCOUNT_RATE_LIMITS = {"login": "100000/m/ip", "login_failed": "100000/m/ip,100000/5m/key"}
HEADLESS_ONLY = True
HEADLESS_CLIENTS = ("app",)
HEADLESS_FRONTEND_URLS = {
    "account_confirm_email": "https://bench.example/verify/{key}",
    "account_reset_password_from_key": "https://bench.example/reset/{key}",
    "account_signup": "https://bench.example/signup",
}
HEADLESS_TOKEN_STRATEGY = "allauth.headless.tokens.strategies.jwt.JWTTokenStrategy"
HEADLESS_JWT_ALGORITHM = "HS256"
HEADLESS_JWT_PRIVATE_KEY = JWT_SIGNING_KEY
HEADLESS_JWT_ACCESS_TOKEN_EXPIRES_IN = 300
HEADLESS_JWT_REFRESH_TOKEN_EXPIRES_IN = 30 * 24 * 3600
HEADLESS_JWT_ROTATE_REFRESH_TOKEN = True
# Access tokens are checked against the session on every request, so that ending
# the session ends them at once: allauth's counterpart of the app's revocation.
HEADLESS_JWT_STATEFUL_VALIDATION_ENABLED = True

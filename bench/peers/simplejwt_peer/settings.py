"""simplejwt peer: TokenObtainPair, TokenRefresh with rotation and blacklist, JWTAuthentication."""

from datetime import timedelta

from peer_common.settings_base import *  # noqa: F403
from peer_common.settings_base import INSTALLED_APPS, JWT_SIGNING_KEY, REST_FRAMEWORK

ROOT_URLCONF = "simplejwt_peer.urls"
INSTALLED_APPS = [*INSTALLED_APPS, "rest_framework_simplejwt.token_blacklist"]
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"],
}
SIMPLE_JWT = {
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=5),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=30),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
}

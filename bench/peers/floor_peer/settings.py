"""Floor settings: startproject's (peer_common), no authentication classes."""

from peer_common.settings_base import *  # noqa: F403
from peer_common.settings_base import REST_FRAMEWORK

ROOT_URLCONF = "floor_peer.urls"
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_AUTHENTICATION_CLASSES": []}

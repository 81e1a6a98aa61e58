"""The app's own settings (config.settings) plus one extra URL for the no-authentication floor."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.ours_urls"

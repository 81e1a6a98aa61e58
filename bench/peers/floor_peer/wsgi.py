"""WSGI entry point of the floor."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "floor_peer.settings")
application = get_wsgi_application()

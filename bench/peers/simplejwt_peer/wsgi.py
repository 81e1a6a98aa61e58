"""WSGI entry point of the simplejwt peer."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "simplejwt_peer.settings")
application = get_wsgi_application()

"""A profile per provider user: whether the provider vouches for the address, and the name it gives out."""

from django.conf import settings
from django.db import models


class Profile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    name = models.CharField(max_length=200, blank=True)
    email_verified = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.user.get_username()

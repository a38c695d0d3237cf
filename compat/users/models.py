"""The Whisper fork's custom user model (SavandBros/whisper `users/models.py`): Django's
AbstractUser plus a display name, table `users_user`."""
from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    # First and last name do not cover name patterns around the globe.
    name = models.CharField("Name of User", blank=True, max_length=255)

    def __str__(self):
        return self.username

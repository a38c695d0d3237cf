"""An AbstractUser whose login is its email (USERNAME_FIELD = "email"), table
`emailusers_emailuser`: the usual way a project logs in by email while keeping Django's
UserManager. `username` stays (unique, required), so createsuperuser asks for it."""
from django.contrib.auth.models import AbstractUser
from django.db import models


class EmailUser(AbstractUser):
    email = models.EmailField("email address", unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS = ["username"]

    def __str__(self):
        return self.email

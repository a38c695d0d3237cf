from django.apps import AppConfig


class EmailUsersConfig(AppConfig):
    """A user model logging in by email (installed when AUTH_USER_MODEL = "emailusers.EmailUser")."""

    name = "emailusers"
    label = "emailusers"
    default_auto_field = "django.db.models.AutoField"

from django.apps import AppConfig


class UsersConfig(AppConfig):
    """The Whisper fork's user app (installed when AUTH_USER_MODEL = "users.User")."""

    name = "users"
    label = "users"
    default_auto_field = "django.db.models.AutoField"
